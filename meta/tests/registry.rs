//! The chunk-server registry through a one-node group.

use arbor_meta::records::ServerStatus;
use arbor_meta::{MetaConfig, MetaError, MetaNode};

#[tokio::test]
async fn servers_register_heartbeat_go_offline_and_drain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = MetaNode::open_single(MetaConfig::new(dir.path(), 1).with_durable(false))
        .await
        .expect("open");
    let meta = node.client();

    let a = meta
        .register_chunk_server(11, "10.0.0.1:9100", "zone-a", 1000, 1_000)
        .await
        .expect("register a");
    assert_eq!((a.status, a.used), (ServerStatus::Online, 0));
    meta.register_chunk_server(22, "10.0.0.2:9100", "zone-b", 2000, 1_000)
        .await
        .expect("register b");
    let a = meta
        .chunk_server_heartbeat(11, 300, 3, 5_000)
        .await
        .expect("heartbeat");
    assert_eq!((a.used, a.chunks, a.last_heartbeat_ms), (300, 3, 5_000));
    assert_eq!(
        meta.chunk_server_heartbeat(99, 0, 0, 5_000).await,
        Err(MetaError::NoSuchChunkServer(99))
    );

    // b has been silent since 1 000: at 9 000 with a 5 000 timeout it is OFFLINE.
    assert_eq!(
        meta.mark_offline_servers(9_000, 5_000).await.expect("mark"),
        [22]
    );
    assert_eq!(
        meta.mark_offline_servers(9_000, 5_000)
            .await
            .expect("again"),
        Vec::<u64>::new()
    );
    let b = meta
        .chunk_server_heartbeat(22, 0, 0, 9_500)
        .await
        .expect("back");
    assert_eq!(
        b.status,
        ServerStatus::Online,
        "a heartbeat brings an OFFLINE server back"
    );

    // DRAINING is an operator's choice: kept across re-registration, and
    // never marked OFFLINE over it.
    meta.set_chunk_server_status(11, ServerStatus::Draining)
        .await
        .expect("drain");
    let a = meta
        .register_chunk_server(11, "10.0.0.1:9101", "zone-a", 1000, 10_000)
        .await
        .expect("re-register");
    assert_eq!(
        (a.status, a.addr.as_str()),
        (ServerStatus::Draining, "10.0.0.1:9101")
    );
    assert_eq!(
        meta.mark_offline_servers(100_000, 5_000)
            .await
            .expect("mark"),
        [22]
    );
    assert!(matches!(
        meta.set_chunk_server_status(11, ServerStatus::Offline)
            .await,
        Err(MetaError::InvalidRequest(_))
    ));
    let servers = meta.chunk_servers().await.expect("list");
    let states: Vec<(u64, ServerStatus)> = servers.iter().map(|s| (s.id, s.status)).collect();
    assert_eq!(
        states,
        [(11, ServerStatus::Draining), (22, ServerStatus::Offline)]
    );

    // The registry survives a restart.
    node.shutdown().await.expect("shutdown");
    let node = MetaNode::open_single(MetaConfig::new(dir.path(), 1).with_durable(false))
        .await
        .expect("reopen");
    assert_eq!(node.client().chunk_servers().await.expect("list"), servers);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_new_server_at_an_old_address_retires_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = MetaNode::open_single(MetaConfig::new(dir.path(), 1).with_durable(false))
        .await
        .expect("open");
    let meta = node.client();
    meta.register_chunk_server(1, "10.0.0.1:9100", "a", 1000, 1_000)
        .await
        .expect("register 1");
    // The machine's data directory was wiped: a new id at the same address.
    meta.register_chunk_server(2, "10.0.0.1:9100", "a", 1000, 2_000)
        .await
        .expect("register 2");
    let servers = meta.chunk_servers().await.expect("list");
    let old = servers.iter().find(|s| s.id == 1).expect("old record");
    assert_eq!((old.status, old.addr.as_str()), (ServerStatus::Offline, ""));
    let new = servers.iter().find(|s| s.id == 2).expect("new record");
    assert_eq!(
        (new.status, new.addr.as_str()),
        (ServerStatus::Online, "10.0.0.1:9100")
    );
    // The old id, heartbeating from somewhere, must register again first.
    assert_eq!(
        meta.chunk_server_heartbeat(1, 0, 0, 3_000).await,
        Err(MetaError::NoSuchChunkServer(1))
    );
    let back = meta
        .register_chunk_server(1, "10.0.0.9:9100", "a", 1000, 3_000)
        .await
        .expect("re-register elsewhere");
    assert_eq!(back.status, ServerStatus::Online);
    node.shutdown().await.expect("shutdown");
}
