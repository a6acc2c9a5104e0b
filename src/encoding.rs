//! Content codings of response bodies: which one a response uses, and a
//! streaming decoder for the ones the stages must read through.
//!
//! The guard reads the upstream's `usage` and rewrites bodies to tag them, so a
//! compressed answer would hide both. Two defences, in this order:
//!
//! 1. the stages that read a response ask for it uncompressed: they set
//!    `Accept-Encoding: identity` on the request they pass inward (cheapest:
//!    nothing to decode, see `benches/encoding.rs`);
//! 2. an upstream that compresses anyway is decoded as the body streams past
//!    (gzip, deflate, br, zstd with the `decompress` feature), with a bound on
//!    what one chunk may expand to. A body the guard cannot read (an unknown or
//!    stacked coding, a corrupt stream, or a build without `decompress`) is
//!    *unreadable*: the enforce stage then charges the whole reservation, so an
//!    unreadable answer never costs less than a readable one.

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use http::{HeaderMap, HeaderValue};

/// Asks the inner service for an uncompressed answer, so that the stages can
/// read it as it streams past. Identity is always acceptable to the client too
/// (RFC 9110 §12.5.3): the guard answers uncompressed whatever the client's
/// `Accept-Encoding` said.
pub fn ask_identity(headers: &mut HeaderMap) {
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
}

/// Most bytes one chunk of a compressed body may decode to (a decompression
/// bomb stops here and the body becomes unreadable).
#[cfg(not(fuzzing))]
pub const MAX_DECODED_CHUNK: usize = 16 * 1024 * 1024;

/// Under cargo-fuzz (`--cfg fuzzing`) the bound is 64 KiB: the decoders do the
/// same work per byte out, the bound's refusal is reached the same way, and a
/// bomb the fuzzer keeps mutating costs it 64 KiB per chunk instead of 16 MiB
/// (with the full bound, emitting bombs' output was most of the `decoder` and
/// `usage_scanner` targets' time, see `fuzz/README.md`).
#[cfg(fuzzing)]
pub const MAX_DECODED_CHUNK: usize = 64 * 1024;

/// The content coding of a response, from its `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding (no header, or `identity`).
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped as the RFC says, or raw deflate as some servers send.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// Anything else, or more than one coding stacked: not readable.
    Other,
}

impl Coding {
    /// The coding named by `Content-Encoding` in `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(CONTENT_ENCODING).iter();
        let Some(first) = values.next() else {
            return Coding::Identity;
        };
        if values.next().is_some() {
            return Coding::Other;
        }
        let Ok(v) = first.to_str() else {
            return Coding::Other;
        };
        let mut names = v
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("identity"));
        let Some(name) = names.next() else {
            return Coding::Identity;
        };
        if names.next().is_some() {
            return Coding::Other;
        }
        match name.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            "zstd" => Coding::Zstd,
            _ => Coding::Other,
        }
    }

    /// True for [`Coding::Identity`].
    pub fn is_identity(self) -> bool {
        self == Coding::Identity
    }
}

/// Why a compressed body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The coding is unknown, stacked, or not compiled in (`decompress` feature).
    #[error("content coding not supported")]
    Unsupported,
    /// The compressed stream is corrupt or truncated.
    #[error("corrupt compressed body: {0}")]
    Corrupt(#[source] std::io::Error),
    /// One chunk decoded to more than [`MAX_DECODED_CHUNK`] bytes.
    #[error("a chunk of the compressed body expands past {MAX_DECODED_CHUNK} bytes")]
    TooLarge,
}

#[cfg(feature = "decompress")]
pub use imp::Decoder;

#[cfg(not(feature = "decompress"))]
pub use none::Decoder;

#[cfg(not(feature = "decompress"))]
mod none {
    use super::{Coding, DecodeError};

    /// A streaming decoder. Without the `decompress` feature no coding is
    /// readable: [`Decoder::new`] refuses every one.
    #[derive(Debug)]
    pub struct Decoder(());

    impl Decoder {
        /// A decoder for `coding`; always [`DecodeError::Unsupported`] in this build.
        pub fn new(_coding: Coding) -> Result<Self, DecodeError> {
            Err(DecodeError::Unsupported)
        }

        /// Decodes one chunk (never reached in this build).
        pub fn feed(&mut self, _chunk: &[u8]) -> Result<&[u8], DecodeError> {
            Err(DecodeError::Unsupported)
        }

        /// Ends the stream (never reached in this build).
        pub fn finish(&mut self) -> Result<&[u8], DecodeError> {
            Err(DecodeError::Unsupported)
        }
    }
}

#[cfg(feature = "decompress")]
mod imp {
    use std::io::{self, Write};

    use super::{Coding, DecodeError, MAX_DECODED_CHUNK};

    /// Where a decoder writes: the decoded bytes of the current chunk, refused past
    /// [`MAX_DECODED_CHUNK`].
    #[derive(Debug, Default)]
    struct Sink {
        buf: Vec<u8>,
        over: bool,
    }

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.buf.len() + data.len() > MAX_DECODED_CHUNK {
                self.over = true;
                return Err(io::Error::other("decoded chunk over the limit"));
            }
            self.buf.extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    enum Kind {
        Gzip(flate2::write::MultiGzDecoder<Sink>),
        Zlib(flate2::write::ZlibDecoder<Sink>),
        RawDeflate(flate2::write::DeflateDecoder<Sink>),
        /// `deflate` before its first two bytes tell zlib from raw deflate.
        DeflateStart(Vec<u8>),
        Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
        Zstd(Box<zstd::stream::zio::Writer<Sink, zstd::stream::raw::Decoder<'static>>>),
        Failed,
    }

    /// A streaming decoder of one compressed body: feed it the body's chunks in
    /// order, read back each chunk's decoded bytes.
    pub struct Decoder {
        kind: Kind,
        /// Decoded bytes handed out by the last call.
        out: Vec<u8>,
    }

    impl std::fmt::Debug for Decoder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let kind = match &self.kind {
                Kind::Gzip(_) => "gzip",
                Kind::Zlib(_) => "zlib",
                Kind::RawDeflate(_) => "deflate",
                Kind::DeflateStart(_) => "deflate (start)",
                Kind::Brotli(_) => "br",
                Kind::Zstd(_) => "zstd",
                Kind::Failed => "failed",
            };
            f.debug_struct("Decoder").field("kind", &kind).finish()
        }
    }

    /// True when the first two bytes of a `deflate` body are a zlib header
    /// (RFC 1950: method 8, and the header checksum).
    fn is_zlib(b0: u8, b1: u8) -> bool {
        b0 & 0x0f == 8 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
    }

    impl Decoder {
        /// A decoder for `coding`; [`DecodeError::Unsupported`] for `Identity`
        /// (nothing to decode) and `Other`.
        pub fn new(coding: Coding) -> Result<Self, DecodeError> {
            let kind = match coding {
                Coding::Gzip => Kind::Gzip(flate2::write::MultiGzDecoder::new(Sink::default())),
                Coding::Deflate => Kind::DeflateStart(Vec::new()),
                Coding::Brotli => Kind::Brotli(Box::new(
                    brotli_decompressor::DecompressorWriter::new(Sink::default(), 16 * 1024),
                )),
                Coding::Zstd => Kind::Zstd(Box::new(zstd::stream::zio::Writer::new(
                    Sink::default(),
                    zstd::stream::raw::Decoder::new().map_err(DecodeError::Corrupt)?,
                ))),
                Coding::Identity | Coding::Other => return Err(DecodeError::Unsupported),
            };
            Ok(Self {
                kind,
                out: Vec::new(),
            })
        }

        /// Decodes the next chunk of the body; returns its decoded bytes (valid
        /// until the next call). After an error the decoder stays failed.
        pub fn feed(&mut self, chunk: &[u8]) -> Result<&[u8], DecodeError> {
            if let Kind::DeflateStart(pending) = &mut self.kind {
                pending.extend_from_slice(chunk);
                if pending.len() < 2 {
                    self.out.clear();
                    return Ok(&self.out);
                }
                let start = std::mem::take(pending);
                self.kind = if is_zlib(start[0], start[1]) {
                    Kind::Zlib(flate2::write::ZlibDecoder::new(Sink::default()))
                } else {
                    Kind::RawDeflate(flate2::write::DeflateDecoder::new(Sink::default()))
                };
                return self.run(&start, false);
            }
            self.run(chunk, false)
        }

        /// Ends the body: flushes what the decoder still holds and checks that the
        /// stream was complete.
        pub fn finish(&mut self) -> Result<&[u8], DecodeError> {
            if let Kind::DeflateStart(pending) = &mut self.kind {
                let start = std::mem::take(pending);
                if start.is_empty() {
                    self.out.clear();
                    return Ok(&self.out);
                }
                // One byte is no deflate stream of either kind.
                self.kind = Kind::Failed;
                return Err(DecodeError::Corrupt(io::Error::other(
                    "deflate body of one byte",
                )));
            }
            self.run(&[], true)
        }

        fn run(&mut self, chunk: &[u8], end: bool) -> Result<&[u8], DecodeError> {
            let result = match &mut self.kind {
                Kind::Gzip(d) => step(d, chunk, end, |d| d.try_finish()),
                Kind::Zlib(d) => step(d, chunk, end, |d| d.try_finish()),
                Kind::RawDeflate(d) => step(d, chunk, end, |d| d.try_finish()),
                Kind::Brotli(d) => step(d.as_mut(), chunk, end, |d| d.close()),
                Kind::Zstd(d) => step(d.as_mut(), chunk, end, |d| d.finish()),
                Kind::DeflateStart(_) | Kind::Failed => Err(io::Error::other("decoder failed")),
            };
            let sink = match &mut self.kind {
                Kind::Gzip(d) => Some(d.get_mut()),
                Kind::Zlib(d) => Some(d.get_mut()),
                Kind::RawDeflate(d) => Some(d.get_mut()),
                Kind::Brotli(d) => Some(d.get_mut()),
                Kind::Zstd(d) => Some(d.writer_mut()),
                Kind::DeflateStart(_) | Kind::Failed => None,
            };
            let over = sink.as_ref().is_some_and(|s| s.over);
            self.out.clear();
            if let Some(s) = sink {
                std::mem::swap(&mut self.out, &mut s.buf);
            }
            match result {
                Ok(()) => Ok(&self.out),
                Err(e) => {
                    self.kind = Kind::Failed;
                    self.out.clear();
                    Err(if over {
                        DecodeError::TooLarge
                    } else {
                        DecodeError::Corrupt(e)
                    })
                }
            }
        }
    }

    /// Writes `chunk` through a decoder and flushes its output into the sink; at
    /// the end, runs `finish` to check the stream is complete.
    fn step<W: Write>(
        d: &mut W,
        chunk: &[u8],
        end: bool,
        finish: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        d.write_all(chunk)?;
        d.flush()?;
        if end {
            finish(d)?;
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// A response body decoded as it streams: each compressed chunk becomes its
    /// decoded bytes. Without a decoder the body passes as it is. A stream that
    /// cannot be decoded ends where decoding failed (logged): the bytes after it
    /// would be garbage to the client.
    pub struct Decoded<B> {
        #[pin]
        body: B,
        decoder: Option<Decoder>,
        trailers: Option<HeaderMap>,
        done: bool,
    }
}

impl<B> std::fmt::Debug for Decoded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("decoder", &self.decoder)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> Decoded<B> {
    /// `body`, decoded by `decoder` when there is one.
    pub fn new(body: B, decoder: Option<Decoder>) -> Self {
        Self {
            body,
            decoder,
            trailers: None,
            done: false,
        }
    }
}

impl<B> http_body::Body for Decoded<B>
where
    B: http_body::Body,
    B::Data: bytes::Buf,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use bytes::{Buf, Bytes};
        use http_body::Frame;
        use std::task::Poll;
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let polled = std::task::ready!(this.body.as_mut().poll_frame(cx));
            let Some(decoder) = this.decoder.as_mut() else {
                return Poll::Ready(
                    polled.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))),
                );
            };
            let out = match polled {
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => decoder.feed(&data.copy_to_bytes(data.remaining())),
                    Err(frame) => {
                        *this.trailers = frame.into_trailers().ok();
                        *this.done = true;
                        decoder.finish()
                    }
                },
                None => {
                    *this.done = true;
                    decoder.finish()
                }
            };
            match out {
                Ok([]) => continue,
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(out))))),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot decode the upstream's compressed answer; ending it here");
                    *this.done = true;
                    *this.trailers = None;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.decoder.is_none() {
            return self.body.is_end_stream();
        }
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.decoder.is_none() {
            return self.body.size_hint();
        }
        http_body::SizeHint::new()
    }
}

#[cfg(all(test, feature = "decompress"))]
mod tests {
    use std::io::Write;

    use super::*;
    use http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn codings_are_named() {
        assert_eq!(Coding::of(&HeaderMap::new()), Coding::Identity);
        assert_eq!(Coding::of(&headers("identity")), Coding::Identity);
        assert_eq!(Coding::of(&headers("GZIP")), Coding::Gzip);
        assert_eq!(Coding::of(&headers("x-gzip")), Coding::Gzip);
        assert_eq!(Coding::of(&headers(" br ")), Coding::Brotli);
        assert_eq!(Coding::of(&headers("zstd")), Coding::Zstd);
        assert_eq!(Coding::of(&headers("deflate")), Coding::Deflate);
        assert_eq!(Coding::of(&headers("gzip, br")), Coding::Other);
        assert_eq!(Coding::of(&headers("compress")), Coding::Other);
        let mut two = headers("gzip");
        two.append(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(Coding::of(&two), Coding::Other);
    }

    fn compress(coding: Coding, data: &[u8]) -> Vec<u8> {
        match coding {
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(data).expect("gzip");
                e.finish().expect("gzip")
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(data).expect("zlib");
                e.finish().expect("zlib")
            }
            Coding::Brotli => {
                let mut out = Vec::new();
                let mut r = std::io::Cursor::new(data);
                brotli::BrotliCompress(
                    &mut r,
                    &mut out,
                    &brotli::enc::BrotliEncoderParams::default(),
                )
                .expect("br");
                out
            }
            Coding::Zstd => zstd::encode_all(data, 3).expect("zstd"),
            Coding::Identity | Coding::Other => data.to_vec(),
        }
    }

    fn decode_split(coding: Coding, data: &[u8], cuts: &[usize]) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::new(coding)?;
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cuts {
            let c = c.clamp(prev, data.len());
            out.extend_from_slice(d.feed(&data[prev..c])?);
            prev = c;
        }
        out.extend_from_slice(d.feed(&data[prev..])?);
        out.extend_from_slice(d.finish()?);
        Ok(out)
    }

    const CODINGS: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

    #[test]
    fn every_coding_round_trips_at_every_split() {
        let text: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("data: {{\"n\":{i}}}\n\n").into_bytes())
            .collect();
        for coding in CODINGS {
            let z = compress(coding, &text);
            for cut in (0..=z.len()).step_by(z.len() / 50 + 1) {
                assert_eq!(
                    decode_split(coding, &z, &[cut]).expect("decodes"),
                    text,
                    "{coding:?} cut {cut}"
                );
            }
            assert_eq!(
                decode_split(coding, &z, &(0..z.len()).collect::<Vec<_>>()).expect("byte by byte"),
                text
            );
        }
    }

    #[test]
    fn raw_deflate_is_read_too() {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(b"{\"usage\":{}}").expect("deflate");
        let raw = e.finish().expect("deflate");
        assert_eq!(
            decode_split(Coding::Deflate, &raw, &[1]).expect("raw"),
            b"{\"usage\":{}}"
        );
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        for coding in CODINGS {
            let z = compress(coding, &[b'x'; 10_000]);
            assert!(
                decode_split(coding, &z[..z.len() / 2], &[]).is_err(),
                "{coding:?} truncated"
            );
            let garbage: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(
                decode_split(coding, &garbage, &[7]).is_err(),
                "{coding:?} garbage"
            );
        }
        assert!(Decoder::new(Coding::Other).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_chunk_bound() {
        let zeros = vec![0u8; MAX_DECODED_CHUNK + 1024];
        for coding in CODINGS {
            let z = compress(coding, &zeros);
            assert!(z.len() < 1024 * 1024, "{coding:?} compresses zeros");
            assert!(
                matches!(decode_split(coding, &z, &[]), Err(DecodeError::TooLarge)),
                "{coding:?}"
            );
        }
    }
}
