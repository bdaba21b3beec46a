//! JSON helpers shared by the header and index parsers.

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// The text that starts a duplicate-key error.
const DUPLICATE: &str = "duplicate key ";

/// A JSON object read in order, refusing duplicate keys (serde's maps would
/// silently keep the last one, and a checkpoint must never mean two things).
pub(crate) struct UniqueMap<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for ObjectVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        let quoted = serde_json::to_string(&key).unwrap_or_default();
                        return Err(de::Error::custom(format!("{DUPLICATE}{quoted}")));
                    }
                    out.push((key, map.next_value()?));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// The key named by a duplicate-key error, if `e` is one.
pub(crate) fn duplicate_key(e: &serde_json::Error) -> Option<String> {
    let msg = e.to_string();
    let quoted = msg.strip_prefix(DUPLICATE)?;
    // `"key" at line L column C`: decode the JSON string at the front.
    let mut de = serde_json::Deserializer::from_str(quoted);
    String::deserialize(&mut de).ok()
}
