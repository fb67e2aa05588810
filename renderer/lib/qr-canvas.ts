/**
 * Draws a QR code on a <canvas> with DOM calls only (qrcode-generator computes the modules): the
 * window's CSP allows no inline script or style, and a canvas needs neither.
 */
import qrcode from 'qrcode-generator';

/** Modules of quiet zone around the code, as the QR standard asks (4). */
const QUIET = 4;

export function drawQr(canvas: HTMLCanvasElement, text: string, pixelsPerModule = 4): void {
  // M: 15 % of the code may be damaged (a phone's camera at an angle) while staying small.
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const count = qr.getModuleCount();
  const size = (count + QUIET * 2) * pixelsPerModule;
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this window cannot draw on a canvas');
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, size, size);
  context.fillStyle = '#000000';
  for (let row = 0; row < count; row++) {
    for (let col = 0; col < count; col++) {
      if (qr.isDark(row, col)) context.fillRect((col + QUIET) * pixelsPerModule, (row + QUIET) * pixelsPerModule, pixelsPerModule, pixelsPerModule);
    }
  }
}

/** Empties the canvas (the code holds a key): its pixels go with its size. */
export function clearQr(canvas: HTMLCanvasElement): void {
  canvas.width = 0;
  canvas.height = 0;
}
