// scripts/send.js — shortcut for sending:
//   node scripts/send.js <to_id> <content…>          (same as: openwechat send)
//   node scripts/send.js <to_id> --file <path> [--content <text>]   (same as: openwechat send-file)
import { main } from '../cli.ts';

// Whatever the skill creates (data folder, config.json, chat files, downloads) is private to this user.
process.umask(0o077);

const argv = process.argv.slice(2);
const fileAt = argv.indexOf('--file');
if (fileAt >= 0) {
  const path = argv[fileAt + 1];
  const rest = argv.filter((_, i) => i !== fileAt && i !== fileAt + 1);
  process.exitCode = await main(['send-file', rest[0] ?? '', path ?? '', ...rest.slice(1)]);
} else {
  process.exitCode = await main(['send', ...argv]);
}
