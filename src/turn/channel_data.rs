//! ChannelData framing (RFC 8656 12.4): a 4-byte header (channel number, length) before the
//! application data; padded to 4 bytes on stream transports.

/// Channel numbers a client may bind. RFC 8656 12 narrowed the range to 0x4000-0x4FFF, but
/// RFC 5766 clients (coturn's turnutils_uclient among them) pick from 0x4000-0x7FFE, and
/// coturn accepts those; so do we.
pub const MIN_CHANNEL: u16 = 0x4000;
pub const MAX_CHANNEL: u16 = 0x7FFE;

/// True when the first byte says ChannelData (top bits 01) rather than STUN (00).
pub fn is_channel_data(b: &[u8]) -> bool {
    b.first().is_some_and(|x| x & 0xC0 == 0x40)
}

/// Splits a ChannelData message into (channel, data). On UDP the datagram may carry padding
/// after the data, so trailing bytes are allowed; a length past the end is not.
pub fn parse(b: &[u8]) -> Option<(u16, &[u8])> {
    if b.len() < 4 || !is_channel_data(b) {
        return None;
    }
    let channel = u16::from_be_bytes([b[0], b[1]]);
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    b.get(4..4 + len).map(|d| (channel, d))
}

/// Writes the header for `len` bytes of data into `hdr`.
pub fn header(channel: u16, len: usize) -> [u8; 4] {
    let c = channel.to_be_bytes();
    let l = (len as u16).to_be_bytes();
    [c[0], c[1], l[0], l[1]]
}

/// Bytes a stream frame starting with `b` occupies in total, once its first 4 bytes are in:
/// STUN header + length, or ChannelData header + padded length. None for anything else.
pub fn stream_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    match b[0] & 0xC0 {
        0x00 => Some(20 + len),
        0x40 => Some(4 + ((len + 3) & !3)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        type Case<'a> = (&'a [u8], Option<(u16, &'a [u8])>);
        let cases: &[Case] = &[
            (&[], None),
            (&[0x40, 0x00, 0x00], None),
            (&[0x40, 0x00, 0x00, 0x00], Some((0x4000, &[]))),
            (&[0x40, 0x01, 0x00, 0x02, 9, 8], Some((0x4001, &[9, 8]))),
            (
                &[0x40, 0x01, 0x00, 0x02, 9, 8, 0, 0],
                Some((0x4001, &[9, 8])),
            ),
            (&[0x40, 0x01, 0x00, 0x03, 9, 8], None),
            (&[0x00, 0x01, 0x00, 0x00], None),
            (&[0x80, 0x01, 0x00, 0x00], None),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn stream_frames() {
        assert_eq!(stream_frame_len(&[0x00, 0x01, 0x00, 0x08]), Some(28));
        assert_eq!(stream_frame_len(&[0x40, 0x00, 0x00, 0x05]), Some(12));
        assert_eq!(stream_frame_len(&[0x40, 0x00, 0x00, 0x04]), Some(8));
        assert_eq!(stream_frame_len(&[0xC0, 0x00, 0x00, 0x04]), None);
        assert_eq!(stream_frame_len(&[0x40]), None);
    }
}
