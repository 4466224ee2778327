//! `#[serde(with = "byte_vec")]` for `Vec<u8>` fields: serialized as one
//! byte string rather than a sequence of single bytes. postcard writes both
//! the same way (a varint length, then the bytes), so records stored or
//! logged either way read back unchanged; what changes is the cost, one
//! copy instead of a serde call per byte, which for a 64 KiB inline object
//! was most of the time spent encoding and decoding its commands. A
//! self-describing format (JSON) gets an array of numbers either way.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteVec)
}

struct ByteVec;

impl<'de> Visitor<'de> for ByteVec {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain(Vec<u8>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Bytes(#[serde(with = "super")] Vec<u8>);

    /// The same postcard bytes as a plain `Vec<u8>`, both ways, at every
    /// length around the varint steps; JSON both ways too.
    #[test]
    fn postcard_bytes_are_unchanged() {
        for len in [0usize, 1, 127, 128, 300, 16_384, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let plain = postcard::to_allocvec(&Plain(data.clone())).expect("encode");
            let bytes = postcard::to_allocvec(&Bytes(data.clone())).expect("encode");
            assert_eq!(plain, bytes, "length {len}");
            let back: Bytes = postcard::from_bytes(&plain).expect("decode");
            assert_eq!(back.0, data);
            let json = serde_json::to_string(&Bytes(data.clone())).expect("json");
            assert_eq!(
                json,
                serde_json::to_string(&Plain(data.clone())).expect("json")
            );
            let back: Bytes = serde_json::from_str(&json).expect("from json");
            assert_eq!(back.0, data);
        }
    }
}
