//! The deterministic state machine: one [`Command`] applied inside the
//! caller's redb write transaction. No clocks, no randomness: every replica
//! that applies the same log reaches the same state, byte for byte.

use redb::WriteTransaction;

use crate::command::{Command, CommandResult};
use crate::error::Result;
use crate::namespace::NamespaceTables;

/// Applies one command inside the caller's write txn. Outer Err = storage failure/corruption (fatal for the node);
/// inner CommandResult = the deterministic outcome (e.g. Err(MetaError::NoSuchBucket)). `log_index` is the Raft
/// log index of the entry; it becomes ObjectVersion.generation for PutObject. No clocks, no randomness here.
/// A command whose outcome is an error must leave no change behind (validate before writing).
pub fn apply_command(
    txn: &WriteTransaction,
    log_index: u64,
    cmd: &Command,
) -> Result<CommandResult> {
    apply(&mut NamespaceTables::open(txn)?, log_index, cmd)
}

/// Applies the commands of one log entry in order, as `apply_command` on
/// each would, opening the tables once. Stops at the first outer `Err`.
pub fn apply_commands(
    txn: &WriteTransaction,
    log_index: u64,
    cmds: &[Command],
) -> Result<Vec<CommandResult>> {
    let mut tables = NamespaceTables::open(txn)?;
    cmds.iter()
        .map(|cmd| apply(&mut tables, log_index, cmd))
        .collect()
}

fn apply(tables: &mut NamespaceTables<'_>, log_index: u64, cmd: &Command) -> Result<CommandResult> {
    match cmd {
        Command::CreateBucket { name, created_ms } => tables.create_bucket(name, *created_ms),
        Command::DeleteBucket { name } => tables.delete_bucket(name),
        Command::PutObject {
            bucket,
            key,
            version,
            condition,
        } => tables.put_object(log_index, bucket, key, version, condition),
        Command::DeleteObject { bucket, key } => tables.delete_object(log_index, bucket, key),
    }
}
