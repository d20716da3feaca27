//! Bad requests get a 4xx `failed` answer and write nothing.

use hyper::StatusCode;

use crate::cluster::{Cluster, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let cluster = Cluster::start(|config| config.kv.body_bytes_max = 1024).await;
    cluster.put("door", "open").await;
    let leader = cluster.leader_of("door").await;
    let addr = cluster.addr(leader);
    let partition = cluster
        .node(leader)
        .raft()
        .partition_for_key("door")
        .expect("routed");
    let before = cluster.status(leader, partition).await.last_index;

    let too_large = vec![b'x'; 1025];
    let long_key = format!("/kv/{}", "k".repeat(1025));
    let refused = [
        (
            "PUT",
            "/kv/door".to_owned(),
            too_large.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "POST",
            "/cas/door".to_owned(),
            too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "POST",
            "/cas/door".to_owned(),
            b"{\"expected\":\"open\"".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/cas/door".to_owned(),
            b"{\"expected\":\"open\",\"new\":7}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/cas/door".to_owned(),
            b"{\"expected\":\"open\",\"new\":\"shut\",\"x\":1}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/cas/door".to_owned(),
            b"{\"expected\":\"open\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("PUT", long_key, b"v".to_vec(), StatusCode::BAD_REQUEST),
        (
            "GET",
            "/kv/door?stale=maybe".to_owned(),
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/elsewhere/door".to_owned(),
            b"v".to_vec(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, status) in refused {
        let answer = request(addr, method, &path, body, &[]).await;
        assert_eq!(
            (answer.status, answer.outcome()),
            (status, "failed"),
            "{method} {}: {answer:?}",
            &path[..path.len().min(40)]
        );
        assert!(answer.json()["reason"].is_string(), "{answer:?}");
    }
    // Nothing was proposed, and the value is the one before.
    assert_eq!(cluster.status(leader, partition).await.last_index, before);
    assert_eq!(
        cluster.get(leader, "door").await.as_deref(),
        Some(&b"open"[..])
    );
}
