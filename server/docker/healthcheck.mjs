// Container health check for the streaming proxy: exits 0 when GET /health answers 200, 1 otherwise.
// A separate script (not curl/wget) because the offline image is FROM scratch and holds only node;
// the same script runs in the node:20-alpine image so both images report health identically.
import http from 'node:http';

const port = Number(process.env.PROXY_PORT || 8080);
const req = http.get({ host: '127.0.0.1', port, path: '/health', timeout: 4000, agent: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stderr.write(`health check failed: ${e.message}\n`);
  process.exit(1);
});
