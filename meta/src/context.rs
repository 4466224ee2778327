//! The apply context: the state tables of one redb write transaction,
//! opened once for every log entry the transaction applies, and where in
//! the log the command being applied sits. Every write operation's `apply`
//! works through it.

use redb::{Table, WriteTransaction};

use crate::error::{MetaError, Result};
use crate::schema;

/// A state table opened for writing.
pub(crate) type WriteTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// The state tables opened for writing by one apply transaction, and the
/// log position of the command at hand.
pub struct ApplyContext<'txn> {
    /// The Raft log index of the entry: it becomes the generation of the
    /// versions the command commits.
    pub(crate) log_index: u64,
    /// The command's index within its entry (group commit puts many
    /// commands in one entry): with the generation it names a version row,
    /// so two puts of one key in one entry make two distinct versions.
    pub(crate) position: u32,
    pub(crate) buckets: WriteTable<'txn>,
    pub(crate) children: WriteTable<'txn>,
    pub(crate) inodes: WriteTable<'txn>,
    pub(crate) versions: WriteTable<'txn>,
    pub(crate) gc_queue: WriteTable<'txn>,
    pub(crate) counters: WriteTable<'txn>,
    pub(crate) chunk_refs: WriteTable<'txn>,
    pub(crate) server_chunks: WriteTable<'txn>,
    pub(crate) under_replicated: WriteTable<'txn>,
    pub(crate) chunk_servers: WriteTable<'txn>,
    pub(crate) uploads: WriteTable<'txn>,
    pub(crate) upload_index: WriteTable<'txn>,
    pub(crate) parts: WriteTable<'txn>,
    pub(crate) dir_key_len: WriteTable<'txn>,
    pub(crate) reclaim: WriteTable<'txn>,
    pub(crate) client_tokens: WriteTable<'txn>,
    pub(crate) client_token_order: WriteTable<'txn>,
    pub(crate) completed_uploads: WriteTable<'txn>,
    pub(crate) bucket_tags: WriteTable<'txn>,
    pub(crate) bucket_versioning: WriteTable<'txn>,
    pub(crate) bucket_lock: WriteTable<'txn>,
    pub(crate) version_locks: WriteTable<'txn>,
    pub(crate) access_keys: WriteTable<'txn>,
    pub(crate) bucket_policies: WriteTable<'txn>,
    pub(crate) public_access_blocks: WriteTable<'txn>,
    pub(crate) bucket_cors: WriteTable<'txn>,
    pub(crate) bucket_lifecycle: WriteTable<'txn>,
    pub(crate) bucket_acls: WriteTable<'txn>,
    pub(crate) bucket_lifecycle_filters: WriteTable<'txn>,
    pub(crate) bucket_lock_years: WriteTable<'txn>,
}

impl<'txn> ApplyContext<'txn> {
    /// Opens every state table of `txn` for the entry at `log_index`.
    pub fn open(txn: &'txn WriteTransaction, log_index: u64) -> Result<Self> {
        Ok(ApplyContext {
            log_index,
            position: 0,
            buckets: txn.open_table(schema::BUCKETS)?,
            children: txn.open_table(schema::CHILDREN)?,
            inodes: txn.open_table(schema::INODES)?,
            versions: txn.open_table(schema::VERSIONS)?,
            gc_queue: txn.open_table(schema::GC_QUEUE)?,
            counters: txn.open_table(schema::COUNTERS)?,
            chunk_refs: txn.open_table(schema::CHUNK_REFS)?,
            server_chunks: txn.open_table(schema::SERVER_CHUNKS)?,
            under_replicated: txn.open_table(schema::UNDER_REPLICATED)?,
            chunk_servers: txn.open_table(schema::CHUNK_SERVERS)?,
            uploads: txn.open_table(schema::UPLOADS)?,
            upload_index: txn.open_table(schema::UPLOAD_INDEX)?,
            parts: txn.open_table(schema::PARTS)?,
            dir_key_len: txn.open_table(schema::DIR_KEY_LEN)?,
            reclaim: txn.open_table(schema::RECLAIM)?,
            client_tokens: txn.open_table(schema::CLIENT_TOKENS)?,
            client_token_order: txn.open_table(schema::CLIENT_TOKEN_ORDER)?,
            completed_uploads: txn.open_table(schema::COMPLETED_UPLOADS)?,
            bucket_tags: txn.open_table(schema::BUCKET_TAGS)?,
            bucket_versioning: txn.open_table(schema::BUCKET_VERSIONING)?,
            bucket_lock: txn.open_table(schema::BUCKET_LOCK)?,
            version_locks: txn.open_table(schema::VERSION_LOCKS)?,
            access_keys: txn.open_table(schema::ACCESS_KEYS)?,
            bucket_policies: txn.open_table(schema::BUCKET_POLICIES)?,
            public_access_blocks: txn.open_table(schema::PUBLIC_ACCESS_BLOCKS)?,
            bucket_cors: txn.open_table(schema::BUCKET_CORS)?,
            bucket_lifecycle: txn.open_table(schema::BUCKET_LIFECYCLE)?,
            bucket_acls: txn.open_table(schema::BUCKET_ACLS)?,
            bucket_lifecycle_filters: txn.open_table(schema::BUCKET_LIFECYCLE_FILTERS)?,
            bucket_lock_years: txn.open_table(schema::BUCKET_LOCK_YEARS)?,
        })
    }

    /// Moves to the command at `position` of the entry at `log_index`.
    pub(crate) fn at(&mut self, log_index: u64, position: usize) -> Result<()> {
        self.position = u32::try_from(position).map_err(|_| {
            MetaError::Corrupt(format!("log entry holds over {} commands", u32::MAX))
        })?;
        self.log_index = log_index;
        Ok(())
    }
}
