//! Any bytes as a request frame: decoding must return an error or a request, never panic or
//! allocate without bound; a decoded request must re-encode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    // Exercise the framing layer too: a length prefix followed by whatever came.
    while let Ok(Some(frame)) = brook_protocol::frame::take_frame(&mut buf, 1 << 20) {
        if let Ok(req) = brook_protocol::request::decode_request(frame.freeze()) {
            let _ = brook_protocol::request::encode_request(&req.header, &req.body);
        }
    }
    if let Ok(req) = brook_protocol::request::decode_request(bytes::Bytes::copy_from_slice(data)) {
        let _ = brook_protocol::request::encode_request(&req.header, &req.body);
    }
});
