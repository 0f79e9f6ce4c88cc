const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 5000);

http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    res.end(`Hello from node-yarn on Yurt (one day is ${ms("1d")} ms)\n`);
  })
  .listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));
