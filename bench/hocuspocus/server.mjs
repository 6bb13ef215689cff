// The baseline server of bench/bench_coedit.py: @hocuspocus/server as it comes,
// no extensions (documents live in memory), on 127.0.0.1 and a free port.
// Prints "listening PORT" once it accepts connections.
import { Server } from "@hocuspocus/server";

const server = new Server({ port: 0, address: "127.0.0.1", quiet: true });
await server.listen();
console.log(`listening ${server.address.port}`);
