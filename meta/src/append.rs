//! Append (S3 Express One Zone's PutObject with `x-amz-write-offset-bytes`):
//! a new version made of the current version's chunks followed by chunks
//! written for the append, committed in one command. No existing byte is
//! read, written or copied; the replaced version's chunks change owner
//! (see docs/design.md, "Append").

use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{split_key, validate_key};
use crate::limits::{INLINE_OBJECT_SIZE_MAX, PART_NUMBER_MAX};
use crate::namespace::{NewChunks, commit_version};
use crate::op::{Apply, Outcome, SIZE_BASE, SIZE_CHUNK_REF};
use crate::records::chunk::ChunkPlacement;
use crate::records::object::{ObjectData, ObjectVersion, WriteCondition};
use crate::records::tree::ObjectEntry;
use crate::tree::{lookup_object, read_bucket, read_version, resolve_directories};

/// Commits `version` as `bucket/key`'s new current version, made by
/// appending to the version the proposer read (`base`).
///
/// Refused with `WriteOffsetMismatch` if the current size is not
/// `offset`, with `Conflict` if the current version is not `base` any
/// more (same size, other content: read again and retry), and with
/// `InvalidRequest` if `version` does not extend `base` (its chunks must
/// start with all of `base`'s, unchanged; an inline base is either
/// extended inline or rewritten whole into fresh chunks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendObject {
    pub bucket: String,
    pub key: String,
    /// `x-amz-write-offset-bytes`: the size the object must have now.
    pub offset: u64,
    /// The version the proposer built on, as (generation, position);
    /// `None`: the key had no object (and `offset` is 0).
    pub base: Option<(u64, u32)>,
    pub version: ObjectVersion,
    /// The client's If-Match / If-None-Match. The bucket's overwrite
    /// policy applies as to any write that changes an existing object.
    pub condition: WriteCondition,
    /// How many leading chunks of `version` are `base`'s; the rest were
    /// written for this append.
    pub shared_chunks: usize,
    /// Where the fresh chunks' replicas are (empty for a local store).
    pub placements: Vec<ChunkPlacement>,
}

impl Apply for AppendObject {
    type Reply = ObjectVersion;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ObjectVersion>> {
        if let Err(e) = validate_key(&self.key) {
            return Ok(Err(e));
        }
        let Some(bucket_record) = read_bucket(&ctx.buckets, &self.bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        };
        let (directories, name) = split_key(&self.key);
        let found = resolve_directories(&ctx.children, bucket_record.root, &directories)?;
        let current = if found.len() == directories.len() {
            let parent = found.last().copied().unwrap_or(bucket_record.root);
            // A delete marker is no object: the append starts afresh.
            lookup_object(&ctx.children, parent, name)?.filter(|entry| !entry.delete_marker)
        } else {
            None
        };
        let size = current.as_ref().map_or(0, |entry| entry.size);
        if size != self.offset {
            return Ok(Err(MetaError::WriteOffsetMismatch { size }));
        }
        let base = match (&current, self.base) {
            (None, None) => None,
            (Some(entry), Some(base)) if (entry.generation, entry.position) == base => {
                Some(read_version(&ctx.versions, entry)?)
            }
            _ => {
                return Ok(Err(MetaError::Conflict(
                    "the object changed while the appended data was written".to_owned(),
                )));
            }
        };
        if let Err(e) = self.check_extends(base.as_ref(), current.as_ref()) {
            return Ok(Err(e));
        }
        // Tags may have changed in place since the proposer read the base
        // (PutObjectTagging keeps the generation): the stored ones win.
        let mut version = self.version.clone();
        if let Some(base) = &base {
            version.tags = base.tags.clone();
        }
        commit_version(
            ctx,
            &self.bucket,
            &self.key,
            &version,
            &self.condition,
            NewChunks::Appended {
                shared: self.shared_chunks,
            },
            &self.placements,
            None,
        )
    }

    fn size_estimate(&self) -> usize {
        let data = match &self.version.data {
            ObjectData::Inline(bytes) => bytes.len(),
            ObjectData::Chunks(chunks) => chunks.len().saturating_mul(SIZE_CHUNK_REF),
        };
        SIZE_BASE
            .saturating_add(self.key.len())
            .saturating_add(data)
            .saturating_add(crate::chunks::placements_size(&self.placements))
    }
}

impl AppendObject {
    /// Whether `version` extends `base` as an append must: one more part,
    /// the base's bytes kept (shared chunks unchanged, or inline bytes as a
    /// prefix), the size grown by the appended part.
    fn check_extends(
        &self,
        base: Option<&ObjectVersion>,
        current: Option<&ObjectEntry>,
    ) -> std::result::Result<(), MetaError> {
        let invalid = |why: &str| Err(MetaError::InvalidRequest(format!("append: {why}")));
        let version = &self.version;
        let Some(base) = base else {
            // A new object: an ordinary first write.
            return if self.shared_chunks == 0 && current.is_none() {
                Ok(())
            } else {
                invalid("a new object shares no chunks")
            };
        };
        let base_parts = base.parts.len().max(1);
        let Some(appended) = version.parts.last() else {
            return invalid("the new version lists no parts");
        };
        if version.parts.len() != base_parts + 1 {
            return invalid("the new version must have one part more than the object");
        }
        if version.parts.len() > PART_NUMBER_MAX as usize {
            return Err(MetaError::TooManyParts);
        }
        if version.size != base.size.saturating_add(*appended) {
            return invalid("sizes do not add up");
        }
        match (&base.data, &version.data) {
            (ObjectData::Inline(old), ObjectData::Inline(new)) => {
                if self.shared_chunks != 0
                    || !new.starts_with(old)
                    || new.len() as u64 > INLINE_OBJECT_SIZE_MAX
                {
                    return invalid("inline data must grow in place");
                }
            }
            // A small object's bytes rewritten into chunks with the
            // appended ones: nothing is shared.
            (ObjectData::Inline(_), ObjectData::Chunks(_)) => {
                if self.shared_chunks != 0 {
                    return invalid("an inline object has no chunks to share");
                }
            }
            (ObjectData::Chunks(old), ObjectData::Chunks(new)) => {
                if self.shared_chunks != old.len() || !new.starts_with(old) {
                    return invalid("the object's chunks must be kept, unchanged");
                }
            }
            (ObjectData::Chunks(_), ObjectData::Inline(_)) => {
                return invalid("a chunked object stays chunked");
            }
        }
        let mut offset = 0u64;
        for chunk in version.chunks() {
            if chunk.offset != offset {
                return invalid("chunk offsets are not contiguous");
            }
            offset = offset.saturating_add(chunk.size);
        }
        if matches!(version.data, ObjectData::Chunks(_)) && offset != version.size {
            return invalid("chunks do not cover the object");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::object::{ChunkId, ChunkRef, ObjectHeaders};

    fn chunk(n: u8, offset: u64, size: u64) -> ChunkRef {
        ChunkRef {
            id: ChunkId([n; 16]),
            offset,
            size,
            sha256: [n; 32],
        }
    }

    fn version(size: u64, parts: Vec<u64>, data: ObjectData) -> ObjectVersion {
        ObjectVersion {
            generation: 0,
            size,
            etag: String::new(),
            last_modified_ms: 0,
            headers: ObjectHeaders::default(),
            user_metadata: Vec::new(),
            checksum: None,
            storage_class: None,
            parts,
            tags: Vec::new(),
            acl: Default::default(),
            data,
            stamp: Default::default(),
        }
    }

    fn append(version: ObjectVersion, shared_chunks: usize) -> AppendObject {
        AppendObject {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            offset: 0,
            base: Some((1, 0)),
            version,
            condition: WriteCondition::default(),
            shared_chunks,
            placements: Vec::new(),
        }
    }

    fn refused(result: std::result::Result<(), MetaError>) -> bool {
        matches!(result, Err(MetaError::InvalidRequest(_)))
    }

    #[test]
    fn an_append_must_keep_every_byte_of_the_base() {
        let base = version(
            20,
            Vec::new(),
            ObjectData::Chunks(vec![chunk(1, 0, 10), chunk(2, 10, 10)]),
        );
        let good = ObjectData::Chunks(vec![chunk(1, 0, 10), chunk(2, 10, 10), chunk(3, 20, 5)]);
        let ok = append(version(25, vec![20, 5], good.clone()), 2);
        assert!(ok.check_extends(Some(&base), None).is_ok());

        // A dropped, replaced or reordered base chunk is refused.
        let dropped = ObjectData::Chunks(vec![chunk(1, 0, 10), chunk(3, 10, 15)]);
        assert!(refused(
            append(version(25, vec![20, 5], dropped), 1).check_extends(Some(&base), None)
        ));
        let replaced = ObjectData::Chunks(vec![chunk(1, 0, 10), chunk(9, 10, 10), chunk(3, 20, 5)]);
        assert!(refused(
            append(version(25, vec![20, 5], replaced), 2).check_extends(Some(&base), None)
        ));
        // The wrong count of shared chunks, a wrong size, a part too many,
        // a gap between chunks.
        assert!(refused(
            append(version(25, vec![20, 5], good.clone()), 1).check_extends(Some(&base), None)
        ));
        assert!(refused(
            append(version(26, vec![20, 5], good.clone()), 2).check_extends(Some(&base), None)
        ));
        assert!(refused(
            append(version(25, vec![20, 0, 5], good), 2).check_extends(Some(&base), None)
        ));
        let gap = ObjectData::Chunks(vec![chunk(1, 0, 10), chunk(2, 10, 10), chunk(3, 21, 4)]);
        assert!(refused(
            append(version(25, vec![20, 5], gap), 2).check_extends(Some(&base), None)
        ));
        // A chunked object never goes back inline.
        let inline = ObjectData::Inline(vec![0; 25]);
        assert!(refused(
            append(version(25, vec![20, 5], inline), 0).check_extends(Some(&base), None)
        ));
    }

    #[test]
    fn an_inline_object_grows_in_place_or_moves_into_chunks_whole() {
        let base = version(3, Vec::new(), ObjectData::Inline(b"abc".to_vec()));
        let grown = append(
            version(5, vec![3, 2], ObjectData::Inline(b"abcde".to_vec())),
            0,
        );
        assert!(grown.check_extends(Some(&base), None).is_ok());
        let changed = append(
            version(5, vec![3, 2], ObjectData::Inline(b"xbcde".to_vec())),
            0,
        );
        assert!(refused(changed.check_extends(Some(&base), None)));
        let moved = ObjectData::Chunks(vec![chunk(1, 0, 3), chunk(2, 3, 2)]);
        assert!(
            append(version(5, vec![3, 2], moved.clone()), 0)
                .check_extends(Some(&base), None)
                .is_ok()
        );
        assert!(refused(
            append(version(5, vec![3, 2], moved), 1).check_extends(Some(&base), None)
        ));
    }

    #[test]
    fn the_ten_thousand_and_first_part_is_refused() {
        let parts = vec![1; PART_NUMBER_MAX as usize];
        let size = u64::from(PART_NUMBER_MAX);
        let base = version(
            size,
            parts.clone(),
            ObjectData::Chunks(vec![chunk(1, 0, size)]),
        );
        let mut more = parts;
        more.push(1);
        let data = ObjectData::Chunks(vec![chunk(1, 0, size), chunk(2, size, 1)]);
        let result = append(version(size + 1, more, data), 1).check_extends(Some(&base), None);
        assert!(matches!(result, Err(MetaError::TooManyParts)), "{result:?}");
    }
}
