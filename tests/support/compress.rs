//! Compressing mock upstreams: what nginx in front of a model server, or a
//! hosted API, does to an answer when the request accepts a coding.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The codings a compressing upstream may use.
pub const CODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

/// `data` compressed with `coding`.
pub fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("deflate");
            e.finish().expect("deflate")
        }
        "br" => {
            let mut out = Vec::new();
            brotli::BrotliCompress(
                &mut std::io::Cursor::new(data),
                &mut out,
                &brotli::enc::BrotliEncoderParams::default(),
            )
            .expect("br");
            out
        }
        "zstd" => zstd::encode_all(data, 3).expect("zstd"),
        other => panic!("no coding {other}"),
    }
}

/// `data` decompressed from `coding`.
pub fn decompress(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .expect("deflate");
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        "zstd" => out = zstd::decode_all(data).expect("zstd"),
        other => panic!("no coding {other}"),
    }
    out
}

/// The coding a compressing server picks for this `Accept-Encoding`, as nginx
/// does: the first of ours the client accepts (none for `identity`).
pub fn negotiate(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    accept
        .split(',')
        .map(|p| p.split(';').next().unwrap_or("").trim())
        .find_map(|name| {
            CODINGS
                .iter()
                .copied()
                .find(|c| c.eq_ignore_ascii_case(name))
        })
}

/// A body sent in pieces of `piece` bytes, as a network would split it; or,
/// [`Pieces::stalling`], one whose sender goes silent after its pieces.
#[derive(Debug)]
pub struct Pieces(VecDeque<Bytes>, bool);

impl Pieces {
    /// `pieces`, then nothing ever again (a stalled peer: never ends).
    pub fn stalling(pieces: impl IntoIterator<Item = Bytes>) -> Self {
        Self(pieces.into_iter().collect(), true)
    }

    pub fn new(data: Vec<u8>, piece: usize) -> Self {
        let data = Bytes::from(data);
        let mut out = VecDeque::new();
        let mut at = 0;
        while at < data.len() {
            let end = (at + piece).min(data.len());
            out.push_back(data.slice(at..end));
            at = end;
        }
        Self(out, false)
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.pop_front() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if self.1 => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty() && !self.1
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}
