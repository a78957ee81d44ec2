// scripts/openwechat.js — the CLI (see cli.ts).
import { main } from '../cli.ts';

// Whatever the skill creates (data folder, config.json, chat files, downloads) is private to this user.
process.umask(0o077);

process.exitCode = await main(process.argv.slice(2));
