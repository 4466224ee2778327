//! Where a chunk's replicas go (docs/design.md, Data path): on distinct
//! ONLINE servers, in distinct failure domains where there are enough of
//! them, weighted by free space.
//!
//! Weighted rendezvous hashing: every (chunk, server) pair gets a score
//! `free / -ln(u)`, `u` a uniform hash of the pair in (0, 1); a chunk's
//! replicas are its highest-scoring servers, taking one per zone first.
//! Deterministic for given inputs, no shared ring state, and adding a
//! server moves only the chunks it now wins (its share), as with a
//! consistent-hash ring with virtual nodes but with exact weights.

use crate::records::object::ChunkId;
use crate::records::server::{ChunkServerRecord, ServerId, ServerStatus};

/// The servers (in preference order) to hold `replicas` copies of `chunk`:
/// fewer if fewer servers are ONLINE.
pub fn place(servers: &[ChunkServerRecord], chunk: &ChunkId, replicas: usize) -> Vec<ServerId> {
    let mut scored: Vec<(f64, &ChunkServerRecord)> = servers
        .iter()
        .filter(|s| s.status == ServerStatus::Online)
        .map(|s| (score(chunk, s), s))
        .collect();
    // Highest score first; ties (never in practice) broken by id.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    let mut chosen: Vec<&ChunkServerRecord> = Vec::with_capacity(replicas);
    // One per zone first, in score order...
    for (_, server) in &scored {
        if chosen.len() == replicas {
            break;
        }
        if chosen.iter().all(|c| c.zone != server.zone) {
            chosen.push(server);
        }
    }
    // ...then the best of the rest when there are fewer zones than replicas.
    for (_, server) in &scored {
        if chosen.len() == replicas {
            break;
        }
        if chosen.iter().all(|c| c.id != server.id) {
            chosen.push(server);
        }
    }
    chosen.iter().map(|s| s.id).collect()
}

fn score(chunk: &ChunkId, server: &ChunkServerRecord) -> f64 {
    // At least one byte of weight, so a full server still ranks (last).
    let weight = server.free().max(1) as f64;
    let mut hash = 0xcbf2_9ce4_8422_2325_u64; // FNV-1a offset basis
    for byte in chunk.0.iter().chain(server.id.to_be_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64 finalizer: spreads FNV's weak low bits.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // u in (0, 1), never 0 or 1.
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: u64, zone: &str, free_gib: u64) -> ChunkServerRecord {
        ChunkServerRecord {
            id,
            addr: format!("10.0.0.{id}:9100"),
            zone: zone.to_owned(),
            capacity: free_gib << 30,
            used: 0,
            chunks: 0,
            status: ServerStatus::Online,
            last_heartbeat_ms: 0,
        }
    }

    fn chunk(i: u64) -> ChunkId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.to_le_bytes());
        id[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        ChunkId(id)
    }

    #[test]
    fn replicas_are_distinct_online_and_spread_over_zones() {
        let mut servers: Vec<_> = (1..=6)
            .map(|i| server(i, ["a", "b", "c"][(i % 3) as usize], 100))
            .collect();
        servers[0].status = ServerStatus::Offline;
        servers[1].status = ServerStatus::Draining;
        for i in 0..500 {
            let placed = place(&servers, &chunk(i), 3);
            assert_eq!(placed.len(), 3);
            assert!(
                !placed.contains(&1) && !placed.contains(&2),
                "only ONLINE servers"
            );
            let mut zones: Vec<&str> = placed
                .iter()
                .map(|id| {
                    servers
                        .iter()
                        .find(|s| s.id == *id)
                        .map(|s| s.zone.as_str())
                        .unwrap_or("")
                })
                .collect();
            zones.sort_unstable();
            zones.dedup();
            assert_eq!(
                zones.len(),
                3,
                "three zones available, three used: {placed:?}"
            );
            assert_eq!(placed, place(&servers, &chunk(i), 3), "deterministic");
        }
    }

    #[test]
    fn fewer_zones_than_replicas_still_gives_distinct_servers() {
        let servers: Vec<_> = (1..=4).map(|i| server(i, "only", 100)).collect();
        let placed = place(&servers, &chunk(7), 3);
        assert_eq!(placed.len(), 3);
        let mut unique = placed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        assert_eq!(
            place(&servers[..2], &chunk(7), 3).len(),
            2,
            "no more replicas than servers"
        );
        assert!(place(&[], &chunk(7), 3).is_empty());
    }

    #[test]
    fn adding_a_server_moves_only_its_share() {
        let servers: Vec<_> = (1..=9).map(|i| server(i, "z", 100)).collect();
        let mut grown = servers.clone();
        grown.push(server(10, "z", 100));
        let chunks = 4000;
        let mut moved = 0;
        for i in 0..chunks {
            let before = place(&servers, &chunk(i), 1);
            let after = place(&grown, &chunk(i), 1);
            if before != after {
                assert_eq!(after, [10], "a chunk only ever moves to the new server");
                moved += 1;
            }
        }
        // Expected share 1/10 = 400 of 4000.
        assert!((250..=550).contains(&moved), "moved {moved} of {chunks}");
    }

    #[test]
    fn free_space_weights_the_choice() {
        let servers = vec![server(1, "z", 100), server(2, "z", 300)];
        let wins = (0..4000)
            .filter(|i| place(&servers, &chunk(*i), 1) == [2])
            .count();
        // Expected 3/4 = 3000.
        assert!(
            (2750..=3250).contains(&wins),
            "server with 3x free space won {wins} of 4000"
        );
    }
}
