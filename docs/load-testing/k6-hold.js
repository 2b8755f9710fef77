// k6: hold 1000 idle WebSocket connections for 20 s
// (`strand bench hold --clients 1000 --duration 20`).
//   k6 run -e URL=ws://127.0.0.1:8000/ws k6-hold.js
import { WebSocket } from 'k6/websockets';

export const options = {
  scenarios: {
    hold: { executor: 'per-vu-iterations', vus: 1000, iterations: 1, maxDuration: '60s' },
  },
};

export default function () {
  const ws = new WebSocket(__ENV.URL);
  ws.onopen = () => setTimeout(() => ws.close(), 20000);
}
