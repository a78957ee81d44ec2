// The package version, reported as the MCP server's version.
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
