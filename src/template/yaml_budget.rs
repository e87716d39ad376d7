//! YAML text to a `serde_yaml_ng::Value`, counting bytes as the document is built.
//!
//! The parser expands aliases by replaying the anchored events, and its own limit counts
//! aliases, not bytes: a 1 MB file of aliases to one large string becomes hundreds of MB. Built
//! here, through a visitor that charges every string and node against [`MAX_EXPANDED_BYTES`],
//! the expansion stops with an error before memory does.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::{Mapping, Value as Yaml};

/// Far above what a 1 MB CloudFormation template expands to without aliases.
pub const MAX_EXPANDED_BYTES: usize = 32 << 20;

/// Per node on top of its text: what a `Value` costs in memory, roughly.
const NODE: usize = 32;

pub(super) fn from_str(text: &str) -> Result<Yaml, serde_yaml_ng::Error> {
    let used = Cell::new(0);
    Budget(&used).deserialize(serde_yaml_ng::Deserializer::from_str(text))
}

#[derive(Clone, Copy)]
struct Budget<'b>(&'b Cell<usize>);

impl Budget<'_> {
    fn charge<E: de::Error>(self, bytes: usize) -> Result<(), E> {
        let used = self.0.get().saturating_add(bytes).saturating_add(NODE);
        self.0.set(used);
        if used > MAX_EXPANDED_BYTES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_EXPANDED_BYTES} bytes (aliases of large values?)"
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = Yaml;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Yaml, E> {
        self.charge(0)?;
        Ok(Yaml::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Yaml, E> {
        self.charge(0)?;
        Ok(Yaml::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Yaml, E> {
        self.charge(0)?;
        Ok(Yaml::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Yaml, E> {
        self.charge(0)?;
        Ok(Yaml::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Yaml, E> {
        self.charge(s.len())?;
        Ok(Yaml::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Yaml, E> {
        self.charge(s.len())?;
        Ok(Yaml::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        self.charge(0)?;
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Yaml::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        self.charge(0)?;
        let mut out = Mapping::new();
        while let Some(key) = map.next_key_seed(self)? {
            let value = map.next_value_seed(self)?;
            if out.contains_key(&key) {
                // As serde_yaml_ng's own Mapping does.
                return Err(de::Error::custom(format!(
                    "duplicate entry with key {}",
                    serde_yaml_ng::to_string(&key)
                        .unwrap_or_default()
                        .trim_end()
                )));
            }
            out.insert(key, value);
        }
        Ok(Yaml::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Yaml, A::Error> {
        // A tagged node (`!Ref X`): the variant is the tag.
        let (tag, contents): (String, _) = data.variant()?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        self.charge(tag.len())?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_as_the_parser_builds() {
        let text = "a: &x [1, 2.5, 'three', !Ref Four, ~, true]\nb: *x\nc: {d: !Sub '${e}'}\n";
        let ours = from_str(text).unwrap();
        let theirs: Yaml = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn aliases_of_a_large_string_stop_at_the_budget() {
        // 64 KiB anchored once, aliased 1000 times: 64 MB expanded from a 70 KB file.
        let big = "x".repeat(64 << 10);
        let mut text = format!("a: &big {big}\nl: [");
        text.push_str(&vec!["*big"; 1000].join(", "));
        text.push_str("]\n");
        let e = from_str(&text).unwrap_err().to_string();
        assert!(e.contains("expands to more than"), "{e}");
    }
}
