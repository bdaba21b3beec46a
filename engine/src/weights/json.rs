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

/// Any JSON value, with every object at any depth refusing duplicate keys.
struct UniqueValue(serde_json::Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = UniqueValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<UniqueValue, E> {
                Ok(UniqueValue(Value::Null))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueValue, A::Error> {
                let mut out = Vec::new();
                while let Some(UniqueValue(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(UniqueValue(Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueValue, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        let quoted = serde_json::to_string(&key).unwrap_or_default();
                        return Err(de::Error::custom(format!("{DUPLICATE}{quoted}")));
                    }
                    let UniqueValue(v) = map.next_value()?;
                    out.insert(key, v);
                }
                Ok(UniqueValue(Value::Object(out)))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

/// Parses JSON text, refusing a duplicate key in any object (serde_json's
/// recursion limit bounds the nesting).
pub(crate) fn parse_unique(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str::<UniqueValue>(text).map(|u| u.0)
}
