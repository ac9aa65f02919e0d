//! The AMQP 0-9-1 data types (spec §4.2.5): octet, short, long, long-long (network byte
//! order), short string (1-byte length, at most 255), long string (4-byte length) and packed
//! bits. [`Reader`] reads them from a borrowed slice, checking every length against what is
//! left (never indexing); the `put_*` functions append them to a transmit buffer.

use super::{EncodeError, Error};

/// A cursor over bytes already known to be one whole frame payload (or table). Every read
/// checks the remaining length; on [`Error::Truncated`] the cursor is left where it was.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// `Ok` when every byte was read, else [`Error::TrailingBytes`].
    ///
    /// # Errors
    /// [`Error::TrailingBytes`].
    pub fn finish(&self) -> Result<(), Error> {
        if self.buf.is_empty() { Ok(()) } else { Err(Error::TrailingBytes) }
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`] when fewer are left.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(Error::Truncated)?;
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// An octet.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// A short (16 bits).
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A long (32 bits).
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A long-long (64 bits).
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A short string: one length octet, then that many bytes (not checked for UTF-8: RabbitMQ
    /// names are bytes; the mapping layer checks what it needs).
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn shortstr(&mut self) -> Result<&'a [u8], Error> {
        let save = self.buf;
        let n = self.u8()?;
        self.bytes(usize::from(n)).inspect_err(|_| self.buf = save)
    }

    /// A long string (or any 4-byte-length blob: tables, arrays, byte arrays): the length is
    /// compared with what is left before anything else.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn longstr(&mut self) -> Result<&'a [u8], Error> {
        let save = self.buf;
        let n = self.u32()?;
        let n = usize::try_from(n).map_err(|_| Error::Truncated)?;
        self.bytes(n).inspect_err(|_| self.buf = save)
    }
}

/// Append an octet.
pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

/// Append a short.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a long.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a long-long.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a short string.
///
/// # Errors
/// [`EncodeError`] when `s` is over 255 bytes (nothing appended).
pub fn put_shortstr(out: &mut Vec<u8>, s: &[u8]) -> Result<(), EncodeError> {
    let n = u8::try_from(s.len()).map_err(|_| EncodeError)?;
    out.push(n);
    out.extend_from_slice(s);
    Ok(())
}

/// Append a long string.
///
/// # Errors
/// [`EncodeError`] when `s` is over `u32::MAX` bytes (nothing appended).
pub fn put_longstr(out: &mut Vec<u8>, s: &[u8]) -> Result<(), EncodeError> {
    let n = u32::try_from(s.len()).map_err(|_| EncodeError)?;
    put_u32(out, n);
    out.extend_from_slice(s);
    Ok(())
}

/// Start a 4-byte-length block (a table, an array): returns where the length goes, to be
/// patched by [`end_len32`].
pub fn begin_len32(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Patch the length of the block begun at `at` with the bytes appended since.
///
/// # Errors
/// [`EncodeError`] when the block is over `u32::MAX` bytes or `at` is not a block start.
pub fn end_len32(out: &mut [u8], at: usize) -> Result<(), EncodeError> {
    let len = out.len().checked_sub(at + 4).ok_or(EncodeError)?;
    let len = u32::try_from(len).map_err(|_| EncodeError)?;
    out.get_mut(at..at + 4).ok_or(EncodeError)?.copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Pack up to 8 bits into one octet, first bit lowest (spec §4.2.5.2: consecutive bit fields
/// share octets).
pub fn pack_bits(bits: &[bool]) -> u8 {
    bits.iter().take(8).enumerate().fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_check_lengths_and_leave_the_cursor_on_error() {
        let mut r = Reader::new(&[3, b'a', b'b']);
        assert_eq!(r.shortstr(), Err(Error::Truncated));
        assert_eq!(r.rest(), &[3, b'a', b'b']);
        let mut r = Reader::new(&[0, 0, 0, 2, 9, 8, 7]);
        assert_eq!(r.longstr(), Ok(&[9u8, 8][..]));
        assert_eq!(r.finish(), Err(Error::TrailingBytes));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(r.longstr(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[1]).u16(), Err(Error::Truncated));
    }

    #[test]
    fn writes_round_trip() {
        let mut out = Vec::new();
        put_shortstr(&mut out, b"abc").unwrap();
        put_u64(&mut out, 7);
        let at = begin_len32(&mut out);
        put_u16(&mut out, 1);
        end_len32(&mut out, at).unwrap();
        let mut r = Reader::new(&out);
        assert_eq!(r.shortstr().unwrap(), b"abc");
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.longstr().unwrap(), &[0, 1]);
        assert!(r.is_empty());
        assert_eq!(put_shortstr(&mut out, &[0; 256]), Err(EncodeError));
        assert_eq!(pack_bits(&[true, false, true]), 0b101);
    }
}
