//! The deterministic state machine: one [`Command`] applied inside the
//! caller's redb write transaction. No clocks, no randomness: every replica
//! that applies the same log reaches the same state, byte for byte.

use redb::WriteTransaction;

use crate::command::{Command, CommandResult};
use crate::error::{MetaError, Result};
use crate::namespace::NamespaceTables;

/// Applies one command inside the caller's write txn. Outer Err = storage
/// failure/corruption (fatal for the node); inner CommandResult = the
/// deterministic outcome (e.g. Err(MetaError::NoSuchBucket)).
///
/// `log_index` is the Raft log index of the entry; it becomes
/// `ObjectVersion.generation` for PutObject. `position` is the command's
/// index within that entry (group commit puts many commands in one entry):
/// with the generation it names the version row, so two puts of one key in
/// one entry make two distinct versions. No clocks, no randomness here.
/// A command whose outcome is an error leaves no change behind.
pub fn apply_command(
    txn: &WriteTransaction,
    log_index: u64,
    position: u32,
    cmd: &Command,
) -> Result<CommandResult> {
    apply(&mut NamespaceTables::open(txn)?, log_index, position, cmd)
}

/// Applies the commands of one log entry in order, as `apply_command` on
/// each (with positions 0, 1, ...) would, opening the tables once. Stops at
/// the first outer `Err`.
pub fn apply_commands(
    txn: &WriteTransaction,
    log_index: u64,
    cmds: &[Command],
) -> Result<Vec<CommandResult>> {
    let mut tables = NamespaceTables::open(txn)?;
    cmds.iter()
        .enumerate()
        .map(|(position, cmd)| apply(&mut tables, log_index, entry_position(position)?, cmd))
        .collect()
}

/// A command's index within its entry as stored in keys.
pub(crate) fn entry_position(position: usize) -> Result<u32> {
    u32::try_from(position)
        .map_err(|_| MetaError::Corrupt(format!("log entry holds over {} commands", u32::MAX)))
}

fn apply(
    tables: &mut NamespaceTables<'_>,
    log_index: u64,
    position: u32,
    cmd: &Command,
) -> Result<CommandResult> {
    match cmd {
        Command::CreateBucket { name, created_ms } => tables.create_bucket(name, *created_ms),
        Command::DeleteBucket { name } => tables.delete_bucket(name),
        Command::PutObject {
            bucket,
            key,
            version,
            condition,
            ownership,
            placements,
        } => tables.put_object(
            log_index, position, bucket, key, version, condition, *ownership, placements,
        ),
        Command::DeleteObject { bucket, key } => tables.delete_object(log_index, bucket, key),
        Command::DeleteObjects { bucket, keys } => tables.delete_objects(log_index, bucket, keys),
        Command::CreateMultipartUpload { upload } => tables.create_upload(upload),
        Command::UploadPart {
            upload_id,
            part,
            shared,
            placements,
        } => tables.put_part(log_index, upload_id, part, shared, placements),
        Command::CompleteMultipartUpload {
            upload_id,
            parts,
            checksum,
            last_modified_ms,
            condition,
        } => tables.complete_upload(
            log_index,
            position,
            upload_id,
            parts,
            checksum.as_ref(),
            *last_modified_ms,
            condition,
        ),
        Command::AbortMultipartUpload { upload_id } => tables.abort_upload(log_index, upload_id),
        Command::ExpireUploads {
            initiated_before_ms,
            limit,
        } => tables.expire_uploads(log_index, *initiated_before_ms, *limit),
        Command::GcAck { records } => tables.gc_ack(records),
        Command::UpdateChunkReplicas { id, add, remove } => tables.update_replicas(id, add, remove),
        Command::CollectOrphans {
            server,
            candidates,
            now_ms,
            grace_ms,
        } => tables.collect_orphans(*server, candidates, *now_ms, *grace_ms),
        Command::RegisterChunkServer {
            id,
            addr,
            zone,
            capacity,
            now_ms,
        } => tables.register_server(*id, addr, zone, *capacity, *now_ms),
        Command::ChunkServerHeartbeat {
            id,
            used,
            chunks,
            now_ms,
        } => tables.heartbeat(*id, *used, *chunks, *now_ms),
        Command::SetChunkServerStatus { id, status } => tables.set_server_status(*id, *status),
        Command::MarkOfflineServers { now_ms, timeout_ms } => {
            tables.mark_offline(*now_ms, *timeout_ms)
        }
        Command::SetOverwritePolicy { bucket, policy } => {
            tables.set_overwrite_policy(bucket, *policy)
        }
        Command::PutObjectTags { bucket, key, tags } => tables.put_object_tags(bucket, key, tags),
    }
}
