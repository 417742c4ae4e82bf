use super::*;

fn decode_all(d: &mut Decoder) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        out.push(f);
    }
    out
}

#[test]
fn the_dictionary_is_the_one_spdy3_fixes() {
    assert_eq!(DICTIONARY.len(), 1423);
    assert!(DICTIONARY.starts_with(b"\0\0\0\x07options"));
    assert!(DICTIONARY.ends_with(b"enq=0."));
}

#[test]
fn streams_data_and_pings_decode_from_any_slicing() {
    let mut c = Encoder::default();
    let mut wire = Vec::new();
    wire.extend(c.syn_stream(
        1,
        &[("streamType", "error"), ("port", "80"), ("requestID", "0")],
    ));
    wire.extend(c.syn_stream(
        3,
        &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
    ));
    wire.extend(Encoder::data(3, false, b"GET / HTTP/1.0\r\n\r\n"));
    wire.extend(Encoder::data(3, true, b""));
    wire.extend(Encoder::ping(7));
    wire.extend(Encoder::rst_stream(1, RST_CANCEL));
    let want = [
        Frame::SynStream {
            id: 1,
            fin: false,
            headers: vec![
                ("streamtype".into(), "error".into()),
                ("port".into(), "80".into()),
                ("requestid".into(), "0".into()),
            ],
        },
        Frame::SynStream {
            id: 3,
            fin: false,
            headers: vec![
                ("streamtype".into(), "data".into()),
                ("port".into(), "80".into()),
                ("requestid".into(), "0".into()),
            ],
        },
        Frame::Data {
            id: 3,
            fin: false,
            data: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        },
        Frame::Data {
            id: 3,
            fin: true,
            data: vec![],
        },
        Frame::Ping(7),
        Frame::RstStream { id: 1 },
    ];
    let mut whole = Decoder::default();
    whole.push(&wire);
    assert_eq!(decode_all(&mut whole), want);
    // Byte by byte, as if every WebSocket message held one byte.
    let mut d = Decoder::default();
    let mut got = Vec::new();
    for b in &wire {
        d.push(std::slice::from_ref(b));
        got.extend(decode_all(&mut d));
    }
    assert_eq!(got, want);
    assert_eq!(header(&want[0].headers(), "streamtype"), Some("error"));
}

impl Frame {
    fn headers(&self) -> Vec<(String, String)> {
        match self {
            Frame::SynStream { headers, .. } => headers.clone(),
            _ => Vec::new(),
        }
    }
}

#[test]
fn replies_inflate_with_the_dictionary() {
    let mut e = Encoder::default();
    let mut inflate = Decompress::new(true);
    for id in [1u32, 3, 5] {
        let f = e.syn_reply(id);
        assert_eq!(&f[..4], &[0x80, 0x03, 0x00, 0x02]);
        let len = u32_at(&f, 4) as usize & 0xff_ffff;
        assert_eq!(f.len(), 8 + len);
        assert_eq!(u32_at(&f, 8), id);
        let block = &f[12..];
        let mut out = Vec::with_capacity(64);
        let mut used = 0;
        while used < block.len() {
            let before = inflate.total_in();
            match inflate.decompress_vec(&block[used..], &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(err) if err.needs_dictionary().is_some() => {
                    inflate.set_dictionary(DICTIONARY).unwrap();
                }
                Err(err) => panic!("{err}"),
            }
            used += (inflate.total_in() - before) as usize;
        }
        assert_eq!(out, [0, 0, 0, 0], "an empty header block");
    }
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let mut d = Decoder::default();
    d.push(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]);
    assert_eq!(d.next_frame(), Err(SpdyError::Version(2)));
    let mut d = Decoder::default();
    d.push(&control(SYN_STREAM, 0, &[0, 0, 0, 1]));
    assert_eq!(d.next_frame(), Err(SpdyError::Short("SYN_STREAM")));
    let mut d = Decoder::default();
    d.push(&control(
        SYN_STREAM,
        0,
        &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
    ));
    assert!(matches!(d.next_frame(), Err(SpdyError::Headers(_))));
    assert!(parse_name_values(&[0, 0, 0, 2, 0, 0, 0, 9, b'a']).is_err());
}
