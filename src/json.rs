//! The JSON Lines envelope (docs/json.md): every record starts with
//! `"type"` and `"v"`. They are added here and nowhere else, so a record
//! type only names itself ([`Record::TYPE`]) and a schema bump is one line.
//!
//! The envelope is a [`Serializer`] adapter, not a `#[serde(flatten)]`
//! wrapper: it opens the record's own struct (or map) with two more fields
//! and hands it back, so a record costs what its fields cost (flatten would
//! buffer every field through serde's generic map path). The same
//! `Serialize` impl is used for a top-level line and for a record nested in
//! another (a lab report's events, a `run` flow's fates), so both carry the
//! envelope, as they always did.
#![forbid(unsafe_code)]

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

/// Version of the JSON Lines schema (docs/json.md). Bumped on any
/// incompatible change; new fields may appear without a bump.
pub const JSON_VERSION: u32 = 1;

/// A top-level JSON Lines object.
pub trait Record {
    /// The `"type"` value, e.g. `drop`.
    const TYPE: &'static str;
}

/// Makes a struct deriving `Serialize` with `#[serde(remote = "Self")]` a
/// [`Record`] whose `Serialize` writes the envelope, then its fields:
/// `json_record!(DropEvent, "drop");`
#[macro_export]
macro_rules! json_record {
    ($t:ty, $name:literal) => {
        impl $crate::json::Record for $t {
            const TYPE: &'static str = $name;
        }
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, $crate::json::Envelope::new(s, $name))
            }
        }
    };
}

/// Opens the record's struct or map with `type` and `v`. Anything but a
/// struct or a map is refused: a record is a JSON object.
pub struct Envelope<S> {
    inner: S,
    kind: &'static str,
}

impl<S> Envelope<S> {
    pub fn new(inner: S, kind: &'static str) -> Self {
        Envelope { inner, kind }
    }
}

fn not_an_object<E: ser::Error>() -> E {
    E::custom("a JSON record must serialize as a struct or a map")
}

macro_rules! refuse {
    ($($f:ident($($t:ty),*)),* $(,)?) => {
        $(fn $f(self, $(_: $t),*) -> Result<S::Ok, S::Error> {
            Err(not_an_object())
        })*
    };
}

impl<S: Serializer> Serializer for Envelope<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeStruct, S::Error> {
        let mut st = self.inner.serialize_struct(name, len + 2)?;
        st.serialize_field("type", self.kind)?;
        st.serialize_field("v", &JSON_VERSION)?;
        Ok(st)
    }

    /// A struct with a flattened field serializes as a map.
    fn serialize_map(self, len: Option<usize>) -> Result<S::SerializeMap, S::Error> {
        let mut m = self.inner.serialize_map(len.map(|n| n + 2))?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("v", &JSON_VERSION)?;
        Ok(m)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_an_object())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_an_object())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_an_object())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_an_object())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_an_object())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_an_object())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_an_object())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_an_object())
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(remote = "Self")]
    struct Plain {
        a: u32,
        b: &'static str,
    }
    json_record!(Plain, "plain");

    #[derive(Serialize)]
    struct Inner {
        x: u8,
        y: u8,
    }

    #[derive(Serialize)]
    #[serde(remote = "Self")]
    struct Flat {
        first: u8,
        #[serde(flatten)]
        inner: Inner,
        last: u8,
    }
    json_record!(Flat, "flat");

    #[derive(Serialize)]
    struct Outer {
        rec: Plain,
    }

    #[test]
    fn envelope_comes_first() {
        let p = Plain { a: 7, b: "x" };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"type":"plain","v":1,"a":7,"b":"x"}"#
        );
    }

    /// A flattened field keeps its place between its neighbours.
    #[test]
    fn flattened_record_keeps_field_order() {
        let f = Flat {
            first: 1,
            inner: Inner { x: 2, y: 3 },
            last: 4,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"type":"flat","v":1,"first":1,"x":2,"y":3,"last":4}"#
        );
    }

    #[test]
    fn nested_record_keeps_its_envelope() {
        let o = Outer {
            rec: Plain { a: 1, b: "y" },
        };
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"rec":{"type":"plain","v":1,"a":1,"b":"y"}}"#
        );
    }

    #[test]
    fn a_scalar_is_not_a_record() {
        struct Num;
        impl Serialize for Num {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                3u8.serialize(super::Envelope::new(s, "num"))
            }
        }
        assert!(serde_json::to_string(&Num).is_err());
    }
}
