//! Field tables and field arrays (spec §4.2.5.5 with RabbitMQ's errata): the `headers` of a
//! message, the `arguments` of declares, `server-properties`, and the `x-received-from`
//! (array of tables) and `x-death` headers federation and dead-lettering add.
//!
//! A table is a long-string-sized block of `(short-string name, type octet, value)` entries;
//! an array is the same without names. Every type RabbitMQ sends is parsed (type octet, then
//! its size): `t` bool (1), `b` i8 (1), `B` u8 (1), `s` i16 (2; RabbitMQ's errata), `u` u16 (2),
//! `U` i16 (2; the spec's short-int), `I` i32 (4), `i` u32 (4), `l` i64 (8), `L` i64 (8; the
//! spec's long-long-int, as amq-protocol reads it), `f` f32 (4), `d` f64 (8), `D` decimal
//! (scale 1 + value 4), `T` timestamp (8), `V` void (0), and the 4-byte-length blocks `S` long
//! string, `x` byte array, `A` array, `F` table.
//!
//! [`Table::parse`] validates the whole block once — every length against what is left, nesting
//! against [`AMQP_MAX_TABLE_DEPTH`], the outer size against [`AMQP_MAX_TABLE_BYTES`] — and then
//! [`Table::iter`], [`Table::get`] and [`Array::iter`] walk the validated bytes without failing.

use super::wire::{self, Reader};
use super::{EncodeError, Error};
use crate::limits::{AMQP_MAX_TABLE_BYTES, AMQP_MAX_TABLE_DEPTH};

/// One field value, borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `t`.
    Bool(bool),
    /// `b`.
    I8(i8),
    /// `B`.
    U8(u8),
    /// `s` (RabbitMQ) and `U` (spec): a signed short.
    I16(i16),
    /// `u`.
    U16(u16),
    /// `I`.
    I32(i32),
    /// `i`.
    U32(u32),
    /// `l` (RabbitMQ) and `L` (spec): a signed long-long.
    I64(i64),
    /// `f`.
    F32(f32),
    /// `d`.
    F64(f64),
    /// `D`: value × 10^-scale.
    Decimal {
        /// Decimal places.
        scale: u8,
        /// Unscaled value.
        value: u32,
    },
    /// `S`: bytes (UTF-8 by convention, not checked here).
    LongStr(&'a [u8]),
    /// `x`.
    Bytes(&'a [u8]),
    /// `A`.
    Array(Array<'a>),
    /// `T`: seconds since the epoch.
    Timestamp(u64),
    /// `F`.
    Table(Table<'a>),
    /// `V`.
    Void,
}

impl<'a> Value<'a> {
    /// The long string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::LongStr(s) | Value::Bytes(s) => Some(s),
            _ => None,
        }
    }

    /// The type octet this value is encoded with.
    pub fn type_octet(&self) -> u8 {
        match self {
            Value::Bool(_) => b't',
            Value::I8(_) => b'b',
            Value::U8(_) => b'B',
            Value::I16(_) => b's',
            Value::U16(_) => b'u',
            Value::I32(_) => b'I',
            Value::U32(_) => b'i',
            Value::I64(_) => b'l',
            Value::F32(_) => b'f',
            Value::F64(_) => b'd',
            Value::Decimal { .. } => b'D',
            Value::LongStr(_) => b'S',
            Value::Bytes(_) => b'x',
            Value::Array(_) => b'A',
            Value::Timestamp(_) => b'T',
            Value::Table(_) => b'F',
            Value::Void => b'V',
        }
    }

    /// Append the type octet and the value.
    ///
    /// # Errors
    /// [`EncodeError`] when a string or block is over `u32::MAX` bytes.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.type_octet());
        match *self {
            Value::Bool(b) => out.push(u8::from(b)),
            Value::I8(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::U8(v) => out.push(v),
            Value::I16(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::U16(v) => wire::put_u16(out, v),
            Value::I32(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::U32(v) => wire::put_u32(out, v),
            Value::I64(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Decimal { scale, value } => {
                out.push(scale);
                wire::put_u32(out, value);
            }
            Value::LongStr(s) | Value::Bytes(s) => wire::put_longstr(out, s)?,
            Value::Array(a) => wire::put_longstr(out, a.raw)?,
            Value::Timestamp(v) => wire::put_u64(out, v),
            Value::Table(t) => wire::put_longstr(out, t.raw)?,
            Value::Void => {}
        }
        Ok(())
    }
}

/// A validated field table (the bytes after its 4-byte length).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Table<'a> {
    raw: &'a [u8],
}

/// A validated field array (the bytes after its 4-byte length).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Array<'a> {
    raw: &'a [u8],
}

impl<'a> Table<'a> {
    /// The empty table.
    pub const EMPTY: Table<'static> = Table { raw: &[] };

    /// Read one table (4-byte length, then entries) from `r` and validate all of it.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TableTooLarge`] (checked at the length, before the
    /// content), [`Error::TableTooDeep`], [`Error::BadFieldType`].
    pub fn parse(r: &mut Reader<'a>) -> Result<Table<'a>, Error> {
        let len = Reader::new(r.rest()).u32()?;
        if u64::from(len) > AMQP_MAX_TABLE_BYTES as u64 {
            return Err(Error::TableTooLarge);
        }
        let raw = r.longstr()?;
        validate_entries(raw, 1)?;
        Ok(Table { raw })
    }

    /// The encoded entries (without the length), as validated.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The entries in wire order (duplicates kept).
    pub fn iter(&self) -> TableIter<'a> {
        TableIter { r: Reader::new(self.raw) }
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl<'a> Array<'a> {
    /// The encoded values (without the length), as validated.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The values in wire order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter { r: Reader::new(self.raw) }
    }
}

/// Entries of a validated [`Table`].
pub struct TableIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for TableIter<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.r.shortstr().ok()?;
        let value = read_value(&mut self.r).ok()?;
        Some((key, value))
    }
}

/// Values of a validated [`Array`].
pub struct ArrayIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        read_value(&mut self.r).ok()
    }
}

/// Read one value (type octet, then the value) without validating nested blocks: used on
/// bytes already validated by [`validate_entries`].
fn read_value<'a>(r: &mut Reader<'a>) -> Result<Value<'a>, Error> {
    let t = r.u8()?;
    let v = match t {
        b't' => Value::Bool(r.u8()? != 0),
        b'b' => Value::I8(i8::from_be_bytes([r.u8()?])),
        b'B' => Value::U8(r.u8()?),
        b's' | b'U' => Value::I16(i16::from_be_bytes(r.u16()?.to_be_bytes())),
        b'u' => Value::U16(r.u16()?),
        b'I' => Value::I32(i32::from_be_bytes(r.u32()?.to_be_bytes())),
        b'i' => Value::U32(r.u32()?),
        b'l' | b'L' => Value::I64(i64::from_be_bytes(r.u64()?.to_be_bytes())),
        b'f' => Value::F32(f32::from_bits(r.u32()?)),
        b'd' => Value::F64(f64::from_bits(r.u64()?)),
        b'D' => Value::Decimal { scale: r.u8()?, value: r.u32()? },
        b'S' => Value::LongStr(r.longstr()?),
        b'x' => Value::Bytes(r.longstr()?),
        b'A' => Value::Array(Array { raw: r.longstr()? }),
        b'T' => Value::Timestamp(r.u64()?),
        b'F' => Value::Table(Table { raw: r.longstr()? }),
        b'V' => Value::Void,
        other => return Err(Error::BadFieldType(other)),
    };
    Ok(v)
}

/// Validate a table's entries at nesting `depth` (the outermost table is 1).
fn validate_entries(raw: &[u8], depth: usize) -> Result<(), Error> {
    let mut r = Reader::new(raw);
    while !r.is_empty() {
        r.shortstr()?;
        validate_value(&mut r, depth)?;
    }
    Ok(())
}

/// Validate one value; nested tables and arrays count one level deeper.
fn validate_value(r: &mut Reader<'_>, depth: usize) -> Result<(), Error> {
    match read_value(r)? {
        Value::Table(t) => descend(depth, |d| validate_entries(t.raw, d)),
        Value::Array(a) => descend(depth, |d| {
            let mut ar = Reader::new(a.raw);
            while !ar.is_empty() {
                validate_value(&mut ar, d)?;
            }
            Ok(())
        }),
        _ => Ok(()),
    }
}

fn descend(depth: usize, f: impl FnOnce(usize) -> Result<(), Error>) -> Result<(), Error> {
    if depth >= AMQP_MAX_TABLE_DEPTH {
        return Err(Error::TableTooDeep);
    }
    f(depth + 1)
}

/// Builds a table into a transmit buffer: the length is patched by [`TableWriter::finish`].
pub struct TableWriter {
    at: usize,
}

impl TableWriter {
    /// Start a table at the end of `out`.
    pub fn begin(out: &mut Vec<u8>) -> TableWriter {
        TableWriter { at: wire::begin_len32(out) }
    }

    /// Append one entry.
    ///
    /// # Errors
    /// [`EncodeError`] when `key` is over 255 bytes or the value over `u32::MAX`.
    pub fn entry(&self, out: &mut Vec<u8>, key: &[u8], value: Value<'_>) -> Result<(), EncodeError> {
        wire::put_shortstr(out, key)?;
        value.emit(out)
    }

    /// Patch the length.
    ///
    /// # Errors
    /// [`EncodeError`] when the table is over `u32::MAX` bytes.
    pub fn finish(self, out: &mut [u8]) -> Result<(), EncodeError> {
        wire::end_len32(out, self.at)
    }
}

/// Append a whole table of `entries`.
///
/// # Errors
/// [`EncodeError`] as [`TableWriter::entry`].
pub fn put_table(out: &mut Vec<u8>, entries: &[(&[u8], Value<'_>)]) -> Result<(), EncodeError> {
    let w = TableWriter::begin(out);
    for (k, v) in entries {
        w.entry(out, k, *v)?;
    }
    w.finish(out)
}

/// Append an array of `values` (test and client-properties helper).
///
/// # Errors
/// [`EncodeError`] as [`Value::emit`].
pub fn put_array(out: &mut Vec<u8>, values: &[Value<'_>]) -> Result<(), EncodeError> {
    let at = wire::begin_len32(out);
    for v in values {
        v.emit(out)?;
    }
    wire::end_len32(out, at)
}

/// Parse a table from a standalone buffer (4-byte length included) that must hold nothing else.
///
/// # Errors
/// As [`Table::parse`], plus [`Error::TrailingBytes`].
pub fn parse_exact(buf: &[u8]) -> Result<Table<'_>, Error> {
    let mut r = Reader::new(buf);
    let t = Table::parse(&mut r)?;
    r.finish()?;
    Ok(t)
}

/// Parse an array from a standalone buffer (4-byte length included).
///
/// # Errors
/// As [`Table::parse`].
pub fn parse_array_exact(buf: &[u8]) -> Result<Array<'_>, Error> {
    let mut r = Reader::new(buf);
    let len = Reader::new(r.rest()).u32()?;
    if u64::from(len) > AMQP_MAX_TABLE_BYTES as u64 {
        return Err(Error::TableTooLarge);
    }
    let raw = r.longstr()?;
    r.finish()?;
    let mut ar = Reader::new(raw);
    while !ar.is_empty() {
        validate_value(&mut ar, 1)?;
    }
    Ok(Array { raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x-received-from` as a federation link adds it (memo §5.5): an array of tables.
    #[test]
    fn every_type_and_nesting_round_trip() {
        let mut inner = Vec::new();
        put_table(&mut inner, &[(b"uri", Value::LongStr(b"amqp://a")), (b"redelivered", Value::Bool(false))]).unwrap();
        let inner_t = parse_exact(&inner).unwrap();
        let mut arr = Vec::new();
        put_array(&mut arr, &[Value::Table(inner_t), Value::I64(-5)]).unwrap();
        let arr_a = parse_array_exact(&arr).unwrap();
        let all = [
            (&b"t"[..], Value::Bool(true)),
            (b"b", Value::I8(-2)),
            (b"B", Value::U8(200)),
            (b"s", Value::I16(-300)),
            (b"u", Value::U16(60000)),
            (b"I", Value::I32(-70000)),
            (b"i", Value::U32(4_000_000_000)),
            (b"l", Value::I64(-1 << 40)),
            (b"f", Value::F32(1.5)),
            (b"d", Value::F64(-2.25)),
            (b"D", Value::Decimal { scale: 2, value: 12345 }),
            (b"S", Value::LongStr("é".as_bytes())),
            (b"x", Value::Bytes(&[0, 1, 2])),
            (b"A", Value::Array(arr_a)),
            (b"T", Value::Timestamp(1_700_000_000)),
            (b"F", Value::Table(inner_t)),
            (b"V", Value::Void),
            (b"x-received-from", Value::Array(arr_a)),
        ];
        let mut out = Vec::new();
        put_table(&mut out, &all).unwrap();
        let t = parse_exact(&out).unwrap();
        let got: Vec<_> = t.iter().collect();
        assert_eq!(got.len(), all.len());
        for ((k, v), (gk, gv)) in all.iter().zip(&got) {
            assert_eq!(k, gk);
            assert_eq!(v, gv);
        }
        let Some(Value::Array(a)) = t.get(b"x-received-from") else { panic!() };
        let Some(Value::Table(first)) = a.iter().next() else { panic!() };
        assert_eq!(first.get(b"uri"), Some(Value::LongStr(b"amqp://a")));
        // `U` and `L` (the spec's letters) read as RabbitMQ's `s` and `l`.
        let spec = [0, 0, 0, 16, 1, b'a', b'U', 0xff, 0xfe, 1, b'b', b'L', 0, 0, 0, 0, 0, 0, 0, 9];
        let t = parse_exact(&spec).unwrap();
        assert_eq!(t.get(b"a"), Some(Value::I16(-2)));
        assert_eq!(t.get(b"b"), Some(Value::I64(9)));
    }

    #[test]
    fn hostile_tables_are_refused() {
        assert_eq!(parse_exact(&[0, 0, 0, 3, 1, b'a', b'Z']), Err(Error::BadFieldType(b'Z')));
        assert_eq!(parse_exact(&[0, 0, 0, 3, 1, b'a', b'S']), Err(Error::Truncated));
        assert_eq!(parse_exact(&[0, 0, 0, 9, 1, b'a', b'S', 0xff, 0xff, 0xff, 0xff, 0, 0]), Err(Error::Truncated));
        assert_eq!(parse_exact(&[0x7f, 0xff, 0xff, 0xff]), Err(Error::TableTooLarge));
        // Nesting one past the limit.
        let mut t = Vec::new();
        put_table(&mut t, &[]).unwrap();
        for _ in 0..AMQP_MAX_TABLE_DEPTH {
            let inner = t.clone();
            t.clear();
            let w = TableWriter::begin(&mut t);
            wire::put_shortstr(&mut t, b"n").unwrap();
            t.push(b'F');
            t.extend_from_slice(&inner);
            w.finish(&mut t).unwrap();
        }
        assert_eq!(parse_exact(&t), Err(Error::TableTooDeep));
        assert!(parse_exact(&t[4 + 3..]).is_ok(), "one level less is accepted");
    }
}
