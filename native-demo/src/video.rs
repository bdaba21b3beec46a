//! Writing a generated clip: H.264 in MP4 (Cisco's OpenH264 encoder, the `mp4`
//! muxer; no system ffmpeg), an animated GIF, or PNG frames.

use std::path::Path;

use kinema_engine::diffusion::Video;
use kinema_engine::{Error, Result};

fn io_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Io { file: path.display().to_string(), message: e.to_string() }
}

/// The container a path's extension names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mp4,
    Gif,
}

impl Format {
    /// `.mp4` or `.gif` (any case); anything else is an error, before any work is done.
    pub fn of(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("mp4") => Ok(Format::Mp4),
            Some("gif") => Ok(Format::Gif),
            _ => {
                Err(io_error(path)(&"the video format comes from the extension: .mp4 or .gif (--frames-dir for PNGs)"))
            }
        }
    }
}

/// Writes `video` as its extension says: `.mp4` (H.264) or `.gif`.
pub fn write(path: &Path, video: &Video) -> Result<()> {
    match Format::of(path)? {
        Format::Mp4 => write_mp4(path, video),
        Format::Gif => write_gif(path, video),
    }
}

/// The quantization range of the H.264 encoder (0 finest, 51 coarsest): the
/// rate control may not go coarser than 20.
const QP: (u8, u8) = (0, 20);

/// The target bit rate: 4 bits per pixel a second (12.8 Mbit/s at 832×480, 16 fps),
/// at least 2 Mbit/s — generous, for frames close to what the model made.
fn bitrate(w: usize, h: usize, fps: u32) -> u32 {
    let bits = (w as u64 * h as u64 * fps.max(1) as u64 * 4).clamp(2_000_000, 200_000_000);
    bits as u32
}

/// Writes `video` as H.264 (Constrained Baseline, one IDR frame then P frames,
/// `video.fps` frames a second) in an MP4 file. Width and height must be even.
pub fn write_mp4(path: &Path, video: &Video) -> Result<()> {
    use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, QpRange, RateControlMode};
    use openh264::formats::{RgbSliceU8, YUVBuffer};
    let io = io_error(path);
    let (w, h) = (video.width, video.height);
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) || w == 0 || h == 0 {
        return Err(io(&format!("H.264 needs an even width and height, not {w}×{h} (write a .gif)")));
    }
    let (w16, h16) = (u16::try_from(w).map_err(|e| io(&e))?, u16::try_from(h).map_err(|e| io(&e))?);
    let config = EncoderConfig::new()
        .max_frame_rate(FrameRate::from_hz(video.fps as f32))
        .bitrate(BitRate::from_bps(bitrate(w, h, video.fps)))
        .rate_control_mode(RateControlMode::Quality)
        .qp(QpRange::new(QP.0, QP.1));
    let api = openh264::OpenH264API::from_source();
    let mut encoder = Encoder::with_api_config(api, config).map_err(|e| io(&e))?;
    // Each frame's NAL units: SPS and PPS go into the track's avcC box, the
    // rest into the sample, each prefixed by its length (MP4's AVC layout).
    let (mut sps, mut pps) = (None, None);
    let mut samples = Vec::with_capacity(video.frames);
    for f in 0..video.frames {
        let rgb = video.rgb8(f);
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (w, h)));
        let stream = encoder.encode(&yuv).map_err(|e| io(&e))?;
        let mut sample = Vec::new();
        let mut sync = false;
        for l in 0..stream.num_layers() {
            let layer = stream.layer(l).expect("in range");
            for n in 0..layer.nal_count() {
                let nal = strip_start_code(layer.nal_unit(n).expect("in range"));
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => sps = sps.or_else(|| Some(nal.to_vec())),
                    Some(8) => pps = pps.or_else(|| Some(nal.to_vec())),
                    Some(t) => {
                        sync |= t == 5; // an IDR slice
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                    None => {}
                }
            }
        }
        samples.push((sample, sync));
    }
    let (Some(sps), Some(pps)) = (sps, pps) else { return Err(io(&"the encoder gave no SPS/PPS")) };
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    let config = mp4::Mp4Config {
        major_brand: str::parse("isom").expect("a fourcc"),
        minor_version: 512,
        compatible_brands: ["isom", "iso2", "avc1", "mp41"].iter().map(|b| str::parse(b).expect("a fourcc")).collect(),
        timescale: 1000,
    };
    let mut mp4 = mp4::Mp4Writer::write_start(std::io::BufWriter::new(file), &config).map_err(|e| io(&e))?;
    let media =
        mp4::MediaConfig::AvcConfig(mp4::AvcConfig { width: w16, height: h16, seq_param_set: sps, pic_param_set: pps });
    // One tick per frame.
    let track = mp4::TrackConfig {
        track_type: mp4::TrackType::Video,
        timescale: video.fps.max(1),
        language: "und".into(),
        media_conf: media,
    };
    mp4.add_track(&track).map_err(|e| io(&e))?;
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        let sample = mp4::Mp4Sample {
            start_time: i as u64,
            duration: 1,
            rendering_offset: 0,
            is_sync,
            bytes: bytes::Bytes::from(bytes),
        };
        mp4.write_sample(1, &sample).map_err(|e| io(&e))?;
    }
    mp4.write_end().map_err(|e| io(&e))
}

/// A NAL unit without its Annex B start code (`00 00 01` or `00 00 00 01`).
fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|&&b| b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) { &nal[zeros + 1..] } else { nal }
}

/// Writes `video` as a looping animated GIF (each frame quantised to 256 colours).
pub fn write_gif(path: &Path, video: &Video) -> Result<()> {
    let io = io_error(path);
    let (w, h) = (u16::try_from(video.width).map_err(|e| io(&e))?, u16::try_from(video.height).map_err(|e| io(&e))?);
    let out = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut enc = gif::Encoder::new(std::io::BufWriter::new(out), w, h, &[]).map_err(|e| io(&e))?;
    enc.set_repeat(gif::Repeat::Infinite).map_err(|e| io(&e))?;
    for f in 0..video.frames {
        let mut frame = gif::Frame::from_rgb_speed(w, h, &video.rgb8(f), 10);
        frame.delay = (100 / video.fps.max(1)) as u16;
        enc.write_frame(&frame).map_err(|e| io(&e))?;
    }
    Ok(())
}

/// Writes each frame of `video` as `dir/frame_NNN.png` (8-bit RGB, lossless).
pub fn write_pngs(dir: &Path, video: &Video) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir)(&e))?;
    for f in 0..video.frames {
        let path = dir.join(format!("frame_{f:03}.png"));
        let io = io_error(&path);
        let file = std::fs::File::create(&path).map_err(|e| io(&e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), video.width as u32, video.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| io(&e))?;
        writer.write_image_data(&video.rgb8(f)).map_err(|e| io(&e))?;
    }
    Ok(())
}
