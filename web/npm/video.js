// MP4 and WebM files of a generated video: the browser's own encoders
// (WebCodecs) compress the frames, mediabunny writes the container. Where the
// browser has no encoder for the format, the call rejects with an Error that
// says so (`encodeGif` from gif.js works everywhere; `encodeVideo` picks).
import {
  BufferTarget, Mp4OutputFormat, Output, QUALITY_HIGH, VideoSample, VideoSampleSource, WebMOutputFormat, canEncodeVideo,
} from "mediabunny";
import { encodeGif } from "./gif.js";

const FORMATS = {
  mp4: { codecs: ["avc", "vp9", "av1"], type: "video/mp4", container: () => new Mp4OutputFormat() },
  webm: { codecs: ["vp9", "vp8", "av1"], type: "video/webm", container: () => new WebMOutputFormat() },
};

/** The first codec of `format` this browser can encode `video` with, or null. */
export async function encodableCodec(format, video) {
  if (typeof VideoEncoder === "undefined") return null;
  for (const codec of FORMATS[format].codecs) {
    const ok = await canEncodeVideo(codec, { width: video.width, height: video.height, frameRate: video.fps })
      .catch(() => false);
    if (ok) return codec;
  }
  return null;
}

async function encode(format, video) {
  const codec = await encodableCodec(format, video);
  if (!codec) {
    const why = typeof VideoEncoder === "undefined" ? "this browser has no WebCodecs VideoEncoder"
      : `this browser encodes none of ${FORMATS[format].codecs.join(", ")} at ${video.width}×${video.height}`;
    throw new Error(`${format}: ${why} (encodeGif works everywhere)`);
  }
  const output = new Output({ format: FORMATS[format].container(), target: new BufferTarget() });
  const source = new VideoSampleSource({ codec, bitrate: QUALITY_HIGH });
  output.addVideoTrack(source, { frameRate: video.fps });
  await output.start();
  for (let i = 0; i < video.frames.length; i++) {
    const sample = new VideoSample(video.frames[i], {
      format: "RGBA", codedWidth: video.width, codedHeight: video.height,
      timestamp: i / video.fps, duration: 1 / video.fps,
    });
    try {
      await source.add(sample);
    } finally {
      sample.close();
    }
  }
  await output.finalize();
  return new Blob([output.target.buffer], { type: FORMATS[format].type });
}

/** An MP4 Blob of `video` (H.264 where the browser encodes it, else VP9 or AV1). */
export function encodeMp4(video) {
  return encode("mp4", video);
}

/** A WebM Blob of `video` (VP9, else VP8 or AV1). */
export function encodeWebm(video) {
  return encode("webm", video);
}

/** The best file this browser can make of `video`: MP4, else WebM, else an animated GIF. */
export async function encodeVideo(video) {
  for (const format of ["mp4", "webm"]) {
    if (await encodableCodec(format, video)) return encode(format, video);
  }
  return encodeGif(video);
}
