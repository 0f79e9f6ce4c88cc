// The "build" script: writes build-info.json so the tests can prove it ran during compile.
const fs = require("fs");

fs.writeFileSync("build-info.json", JSON.stringify({ builtAt: new Date().toISOString() }) + "\n");
console.log("wrote build-info.json");
