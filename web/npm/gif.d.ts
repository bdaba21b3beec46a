/** An animated GIF of a generated video (each frame quantised to 252 colours). */
export function encodeGif(video: { width: number; height: number; fps: number; frames: Uint8ClampedArray[] }): Blob;
