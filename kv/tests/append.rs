//! Lists (`POST /append/{key}`), the replicas' applied states (`GET /_debug/applied`), and
//! the test-only `kv.unsafe_ack_before_commit`.

use hyper::StatusCode;

use crate::cluster::{Cluster, eventually, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_build_a_list_in_log_order_and_one_that_would_not_fit_changes_nothing() {
    let cluster = Cluster::start(|config| config.kv.body_bytes_max = 16).await;
    let leader = cluster.leader_of("list").await;
    let addr = cluster.addr(leader);
    for element in ["1", "22", "333"] {
        request(addr, "POST", "/append/list", element, &[])
            .await
            .assert_is(StatusCode::OK, "ok");
    }
    assert_eq!(
        cluster.get(leader, "list").await.as_deref(),
        Some(&b"1\n22\n333\n"[..])
    );
    // A newline would split an element in two.
    request(addr, "POST", "/append/list", "4\n5", &[])
        .await
        .assert_is(StatusCode::BAD_REQUEST, "failed");
    // 9 bytes held, 8 more would make 17 > body_bytes_max: refused in log order.
    let too_long = request(addr, "POST", "/append/list", "4444444", &[]).await;
    too_long.assert_is(StatusCode::PAYLOAD_TOO_LARGE, "failed");
    assert!(too_long.header("x-kv-index").is_some(), "{too_long:?}");
    request(addr, "POST", "/append/list", "666666", &[])
        .await
        .assert_is(StatusCode::OK, "ok");
    for i in 0..3 {
        assert_eq!(
            cluster.get(i, "list").await.as_deref(),
            Some(&b"1\n22\n333\n666666\n"[..]),
            "node {i}"
        );
    }
}

/// Node `i`'s `/_debug/applied`: (partition, applied index, digest) per partition.
async fn applied(cluster: &Cluster, i: usize) -> Vec<(u64, u64, String)> {
    let answer = request(cluster.addr(i), "GET", "/_debug/applied", "", &[]).await;
    answer.assert_is(StatusCode::OK, "ok");
    answer.json()["partitions"]
        .as_array()
        .expect("a list of partitions")
        .iter()
        .map(|state| {
            (
                state["partition"].as_u64().expect("a partition"),
                state["applied"].as_u64().expect("an index"),
                state["digest"].as_str().expect("a digest").to_owned(),
            )
        })
        .collect()
}

/// Every node's applied states once each applied `written` (key, value: a PUT is answered at
/// its commit, before any replica need have applied it) and all three stand at the same
/// indexes.
async fn caught_up(cluster: &Cluster, written: &[(&str, &str)]) -> Vec<Vec<(u64, u64, String)>> {
    for i in 0..3 {
        for (key, value) in written {
            let path = format!("/kv/{key}?stale=true");
            eventually(|| async {
                let answer = request(cluster.addr(i), "GET", &path, "", &[]).await;
                if answer.status == StatusCode::OK && answer.body == value.as_bytes() {
                    Ok(())
                } else {
                    Err(format!("node {i} never applied {key}"))
                }
            })
            .await;
        }
    }
    eventually(|| async {
        let mut states = Vec::new();
        for i in 0..3 {
            states.push(applied(cluster, i).await);
        }
        let indexes: Vec<Vec<(u64, u64)>> = states
            .iter()
            .map(|s| s.iter().map(|(p, index, _)| (*p, *index)).collect())
            .collect();
        if indexes.iter().all(|i| *i == indexes[0]) {
            Ok(states)
        } else {
            Err(format!("never caught up: {states:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_at_one_applied_index_report_one_digest_of_their_state() {
    let cluster = Cluster::start(|_| {}).await;
    cluster.put("a", "1").await;
    let before = caught_up(&cluster, &[("a", "1")]).await;
    assert!(!before[0].is_empty(), "{before:?}");
    assert!(before.iter().all(|s| *s == before[0]), "{before:?}");

    cluster.put("a", "2").await;
    cluster.put("b", "3").await;
    let after = caught_up(&cluster, &[("a", "2"), ("b", "3")]).await;
    assert!(after.iter().all(|s| *s == after[0]), "{after:?}");
    // The digest follows the state: a partition that applied nothing since has the same digest,
    // and one whose keys changed has another. (An index can move without the state: a new
    // leader's empty entry, a configuration or a partition-map entry change no key.)
    let changed = before[0]
        .iter()
        .filter(|(partition, index, digest)| {
            let now = after[0].iter().find(|(p, _, _)| p == partition);
            let (_, index_now, digest_now) = now.expect("a partition stays listed");
            if index == index_now {
                assert_eq!(digest, digest_now, "{before:?} {after:?}");
            }
            digest != digest_now
        })
        .count();
    assert!(changed > 0, "{before:?} {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_ack_before_commit_acknowledges_what_no_quorum_holds() {
    let mut cluster = Cluster::start(|config| {
        config.kv.unsafe_ack_before_commit = true;
        config.kv.write_timeout_ms = 300;
        // The isolated leader keeps leading: what it acknowledges is decided by the flag alone.
        config.node.check_quorum = false;
    })
    .await;
    let leader = cluster.leader_of("ghost").await;
    for i in (0..3).filter(|i| *i != leader) {
        cluster.stop(i).await;
    }
    let addr = cluster.addr(leader);
    // No quorum: the write cannot commit, yet the leader answers `ok` (without an index).
    let put = request(addr, "PUT", "/kv/ghost", "boo", &[]).await;
    put.assert_is(StatusCode::OK, "ok");
    assert_eq!(put.header("x-kv-index"), None, "{put:?}");
    request(addr, "POST", "/append/ghosts", "1", &[])
        .await
        .assert_is(StatusCode::OK, "ok");
    // A compare-and-set is not under the flag: it times out, unknown.
    request(addr, "POST", "/cas/ghost", r#"{"new":"x"}"#, &[])
        .await
        .assert_is(StatusCode::GATEWAY_TIMEOUT, "unknown");
    // Nothing was applied: the acknowledged writes are not in the leader's own state.
    for path in ["/kv/ghost?stale=true", "/kv/ghosts?stale=true"] {
        request(addr, "GET", path, "", &[])
            .await
            .assert_is(StatusCode::NOT_FOUND, "ok");
    }
}
