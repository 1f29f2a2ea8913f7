// Where the suite writes what a person looks at after a run (screenshots, server logs).

import { fileURLToPath } from 'node:url';

export const OUT_DIR = fileURLToPath(new URL('../out/', import.meta.url));
