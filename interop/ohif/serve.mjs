// One origin for the browser: OHIF's built app (static files, SPA fallback) and /dicom-web
// forwarded to Orthanc on loopback, so the page needs no CORS.
//
//   node serve.mjs --dist DIR --config app-config.js --orthanc 127.0.0.1:PORT --port PORT
//
// Listens on 127.0.0.1 only. Prints "listening http://127.0.0.1:PORT" when ready.
// Every proxied request is logged to stderr as "METHOD STATUS URL" when --log is given.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

function args() {
  const out = { port: 0, log: false };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--log') out.log = true;
    else if (k.startsWith('--')) out[k.slice(2)] = argv[++i];
  }
  for (const k of ['dist', 'config', 'orthanc']) {
    if (!out[k]) {
      console.error(`serve.mjs: --${k} is required`);
      process.exit(2);
    }
  }
  return out;
}

const opt = args();
const dist = path.resolve(opt.dist);
const [orthancHost, orthancPort] = opt.orthanc.split(':');
if (orthancHost !== '127.0.0.1' && orthancHost !== 'localhost') {
  console.error('serve.mjs: --orthanc must be on loopback');
  process.exit(2);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.woff': 'font/woff', '.woff2': 'font/woff2',
  '.ttf': 'font/ttf', '.txt': 'text/plain; charset=utf-8', '.map': 'application/json',
  '.onnx': 'application/octet-stream', '.gz': 'application/gzip',
};

// Cross-origin isolation as OHIF's deployment docs ask (SharedArrayBuffer for the volume
// loader); every resource is same-origin, so require-corp blocks nothing.
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function sendFile(res, file, status = 200) {
  const type = TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream';
  const stat = fs.statSync(file);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': stat.size,
    'Cache-Control': 'no-store', ...ISOLATION });
  fs.createReadStream(file).pipe(res);
}

function proxy(req, res) {
  const headers = { ...req.headers, host: `${orthancHost}:${orthancPort}` };
  delete headers.origin;
  delete headers.referer;
  const up = http.request({ host: orthancHost, port: Number(orthancPort), method: req.method,
    path: req.url, headers }, (ur) => {
    if (opt.log) console.error(`${req.method} ${ur.statusCode} ${req.url}`);
    res.writeHead(ur.statusCode, { ...ur.headers, ...ISOLATION });
    ur.pipe(res);
  });
  up.on('error', (e) => {
    if (opt.log) console.error(`${req.method} 502 ${req.url} ${e.message}`);
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end(`proxy error: ${e.message}`);
  });
  req.pipe(up);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/dicom-web' || url.pathname.startsWith('/dicom-web/')) {
    proxy(req, res);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405).end();
    return;
  }
  if (url.pathname === '/app-config.js') {
    sendFile(res, path.resolve(opt.config));
    return;
  }
  let rel;
  try {
    rel = decodeURIComponent(url.pathname);
  } catch {
    res.writeHead(400).end();
    return;
  }
  const file = path.join(dist, path.normalize(rel));
  if (file.startsWith(dist + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
    sendFile(res, file);
  } else if (path.extname(rel) === '' || rel.endsWith('/')) {
    sendFile(res, path.join(dist, 'index.html')); // SPA routes: /viewer, /segmentation, ...
  } else {
    if (opt.log) console.error(`GET 404 ${req.url}`);
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
  }
});

server.listen(Number(opt.port), '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
