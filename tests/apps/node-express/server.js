const express = require("express");

const app = express();
const port = Number(process.env.PORT || 5000);

app.get("/", (req, res) => {
  res.type("text/plain").send("Hello from node-express on Yurt\n");
});

app.listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));
