/** A generated clip: RGBA frames. */
export interface Video {
  width: number;
  height: number;
  fps: number;
  frames: Uint8ClampedArray[];
}
/** The first codec of the format this browser can encode the video with, or null. */
export function encodableCodec(format: "mp4" | "webm", video: Video): Promise<string | null>;
/** An MP4 Blob (H.264, else VP9 or AV1, by WebCodecs); rejects where the browser cannot encode one. */
export function encodeMp4(video: Video): Promise<Blob>;
/** A WebM Blob (VP9, else VP8 or AV1, by WebCodecs); rejects where the browser cannot encode one. */
export function encodeWebm(video: Video): Promise<Blob>;
/** MP4, else WebM, else an animated GIF. */
export function encodeVideo(video: Video): Promise<Blob>;
