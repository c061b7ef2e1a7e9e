/** Process entry (bin/rtctl runs this): keep it tiny so --version and --help load almost nothing. */
import { main } from './main.js';

await main(process.argv);
