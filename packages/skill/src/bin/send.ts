// scripts/send.js — shortcut for sending:
//   node scripts/send.js <to_id> <content…>          (same as: openwechat send)
//   node scripts/send.js <to_id> --file <path> [--content <text>]   (same as: openwechat send-file)
import { main } from '../cli.ts';

const argv = process.argv.slice(2);
const fileAt = argv.indexOf('--file');
if (fileAt >= 0) {
  const path = argv[fileAt + 1];
  const rest = argv.filter((_, i) => i !== fileAt && i !== fileAt + 1);
  process.exitCode = await main(['send-file', rest[0] ?? '', path ?? '', ...rest.slice(1)]);
} else {
  process.exitCode = await main(['send', ...argv]);
}
