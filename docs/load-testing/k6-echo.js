// k6: 10 clients ping-pong 64-byte messages with an echo server for 5 s
// and time each round trip (`strand bench echo --clients 10 --duration 5`).
// k6 keeps every sample of a Trend in memory (k6#763) and its clock here
// has millisecond resolution, so a loopback round trip reads as 0 or 1 ms.
//   k6 run -e URL=ws://127.0.0.1:8000/ws k6-echo.js
import { WebSocket } from 'k6/websockets';
import { Trend } from 'k6/metrics';

const rtt = new Trend('rtt', true);
const payload = 'x'.repeat(64);

export const options = {
  scenarios: {
    echo: { executor: 'per-vu-iterations', vus: 10, iterations: 1, maxDuration: '30s' },
  },
  thresholds: { rtt: ['p(99)<50'] },
};

export default function () {
  const ws = new WebSocket(__ENV.URL);
  let sent = 0;
  const send = () => { sent = Date.now(); ws.send(payload); };
  ws.onopen = send;
  ws.onmessage = () => { rtt.add(Date.now() - sent); send(); };
  setTimeout(() => ws.close(), 5000);
}
