// Container health check of the api-backend: exits 0 when the cloud server's GET /health answers
// 200, 1 otherwise. A node script because the offline image is FROM scratch (no curl, no shell).
import http from 'node:http';

const host = process.env.HOST && process.env.HOST !== '0.0.0.0' ? process.env.HOST : '127.0.0.1';
const port = Number(process.env.PORT || 8080);
const req = http.get({ host, port, path: '/health', timeout: 4000, agent: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stderr.write(`health check failed: ${e.message}\n`);
  process.exit(1);
});
