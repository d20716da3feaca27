//! The routes' answers: put, get, delete, compare-and-set, a follower's redirect, a stale
//! read.

use hyper::StatusCode;
use kommander_kv::{INDEX_HEADER, LEADER_HEADER, NODE_HEADER, OPERATION_ID_HEADER};

use std::net::SocketAddr;

use crate::cluster::{Answer, Cluster, request};

/// A compare-and-set of `color` on `addr`.
async fn cas(addr: SocketAddr, body: &str) -> Answer {
    request(addr, "POST", "/cas/color", body.to_owned(), &[]).await
}

/// A header's number.
fn number(answer: &Answer, header: &str) -> u64 {
    let value = answer.header(header).expect("the header");
    value.parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_and_compare_and_set_answer_exactly() {
    let cluster = Cluster::start(|_| {}).await;
    let leader = cluster.leader_of("color").await;
    let addr = cluster.addr(leader);
    let blue = Some(&b"blue"[..]);

    let op = [(OPERATION_ID_HEADER, "op-1")];
    let put = request(addr, "PUT", "/kv/color", "blue", &op).await;
    put.assert_is(StatusCode::OK, "ok");
    assert_eq!(put.header(OPERATION_ID_HEADER), Some("op-1"));
    assert_eq!(number(&put, NODE_HEADER), leader as u64 + 1);
    let written = number(&put, INDEX_HEADER);
    assert_eq!(put.json()["index"], written);

    let get = request(addr, "GET", "/kv/color", "", &[]).await;
    get.assert_is(StatusCode::OK, "ok");
    assert_eq!(&get.body[..], b"blue");
    let read_index = number(&get, INDEX_HEADER);
    assert!(
        read_index >= written,
        "read index {read_index} below {written}"
    );

    let mismatch = cas(addr, r#"{"expected":"red","new":"green"}"#).await;
    mismatch.assert_is(StatusCode::CONFLICT, "failed");
    assert_eq!(mismatch.json()["current"], "blue");
    assert_eq!(cluster.get(leader, "color").await.as_deref(), blue);

    cas(addr, r#"{"expected":"blue","new":"green"}"#)
        .await
        .assert_is(StatusCode::OK, "ok");
    let green = Some(&b"green"[..]);
    assert_eq!(cluster.get(leader, "color").await.as_deref(), green);
    cas(addr, r#"{"expected":null,"new":"x"}"#)
        .await
        .assert_is(StatusCode::CONFLICT, "failed");

    let deleted = request(addr, "DELETE", "/kv/color", "", &[]).await;
    deleted.assert_is(StatusCode::OK, "ok");
    let gone = request(addr, "GET", "/kv/color", "", &[]).await;
    gone.assert_is(StatusCode::NOT_FOUND, "ok");
    cas(addr, r#"{"expected":null,"new":"red"}"#)
        .await
        .assert_is(StatusCode::OK, "ok");
    // Every replica applied the same history: a linearizable read on each sees the last write.
    for i in 0..3 {
        let read = cluster.get(i, "color").await;
        assert_eq!(read.as_deref(), Some(&b"red"[..]), "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_follower_is_redirected_to_the_leader_and_writes_nothing_there() {
    let cluster = Cluster::start(|_| {}).await;
    let leader = cluster.leader_of("sky").await;
    let follower = cluster.follower_of("sky").await;

    let redirected = request(cluster.addr(follower), "PUT", "/kv/sky?x=1", "grey", &[]).await;
    assert_eq!(
        (redirected.status, redirected.outcome()),
        (StatusCode::TEMPORARY_REDIRECT, "failed"),
        "{redirected:?}"
    );
    let expected = format!("http://{}/kv/sky?x=1", cluster.addr(leader));
    assert_eq!(redirected.header("location"), Some(expected.as_str()));
    assert_eq!(
        redirected.header(LEADER_HEADER),
        Some((leader + 1).to_string().as_str())
    );
    // The redirect wrote nothing: a linearizable read (on the follower itself) finds no value.
    assert_eq!(cluster.get(follower, "sky").await, None);

    let followed = request(cluster.addr(leader), "PUT", "/kv/sky", "grey", &[]).await;
    assert_eq!(followed.status, StatusCode::OK, "{followed:?}");
    // A follower serves a linearizable read itself (ReadIndex through the leader).
    let read = request(cluster.addr(follower), "GET", "/kv/sky", "", &[]).await;
    assert_eq!(
        (read.status, &read.body[..]),
        (StatusCode::OK, &b"grey"[..]),
        "{read:?}"
    );
    assert_eq!(
        read.header(NODE_HEADER),
        Some((follower + 1).to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_read_answers_from_the_local_replica_where_a_linearizable_one_cannot() {
    let mut cluster = Cluster::start(|_| {}).await;
    cluster.put("tide", "high").await;
    let leader = cluster.leader_of("tide").await;
    let survivor = cluster.follower_of("tide").await;
    // The survivor applied the write (a linearizable read on it waits for that).
    assert_eq!(
        cluster.get(survivor, "tide").await.as_deref(),
        Some(&b"high"[..])
    );
    let third = (0..3)
        .find(|i| *i != leader && *i != survivor)
        .expect("a third node");
    cluster.stop(leader).await;
    cluster.stop(third).await;

    // Alone, the survivor cannot confirm a read index: the default read fails, definitely.
    let linearizable = request(cluster.addr(survivor), "GET", "/kv/tide", "", &[]).await;
    assert_eq!(linearizable.outcome(), "failed", "{linearizable:?}");
    assert!(
        linearizable.status == StatusCode::SERVICE_UNAVAILABLE
            || linearizable.status == StatusCode::GATEWAY_TIMEOUT,
        "{linearizable:?}"
    );
    // A stale read answers from its replica without a round.
    let stale = request(
        cluster.addr(survivor),
        "GET",
        "/kv/tide?stale=true",
        "",
        &[],
    )
    .await;
    assert_eq!(
        (stale.status, &stale.body[..]),
        (StatusCode::OK, &b"high"[..]),
        "{stale:?}"
    );
    assert_eq!(stale.header(INDEX_HEADER), None);
}
