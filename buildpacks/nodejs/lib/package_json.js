#!/usr/bin/env node
// Questions bin/compile asks about an app's package.json, answered with the build host's node
// (no dependencies). Usage: node package_json.js COMMAND PACKAGE_JSON [ARG]
//
//   validate                 exit 1 with the parse error if the file is not a JSON object
//   has-script NAME          exit 0 if scripts.NAME is a non-empty string
//   get DOTTED.KEY           print a string value (nothing if absent)
//   check-node VERSION       print "ok", "mismatch" or "unknown" for engines.node vs VERSION,
//                            then a tab and "simple" or "complex" (how sure the answer is)
"use strict";

const fs = require("fs");

function readPackageJson(path) {
  const data = JSON.parse(fs.readFileSync(path, "utf8"));
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error("the top level must be a JSON object");
  }
  return data;
}

function get(data, dotted) {
  return dotted.split(".").reduce((value, key) => (value && typeof value === "object" ? value[key] : undefined), data);
}

// --- a small semver range checker, enough for engines.node ----------------------------------
// Supports x-ranges (18, 18.x, 18.2.*), ^ and ~, comparators (>=, >, <=, <, =), spaces (AND)
// and || (OR). Hyphen ranges and prereleases make the answer "unknown".

const PART = "(\\d+|[xX*])";
const COMPARATOR = new RegExp(`^(\\^|~|>=|<=|>|<|=)?v?${PART}(?:\\.${PART})?(?:\\.${PART})?$`);

function compare(a, b) {
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

// Returns [lower, upperExclusive] bounds (either may be null) for one comparator, or null.
function bounds(comparator) {
  const m = COMPARATOR.exec(comparator);
  if (!m) return null;
  const op = m[1] || "";
  const parts = [m[2], m[3], m[4]].map((p) => (p === undefined || /^[xX*]$/.test(p) ? null : Number(p)));
  const given = parts.findIndex((p) => p === null);
  const precision = given === -1 ? 3 : given; // how many leading parts are numbers
  if (precision === 0) return op === "<" || op === ">" ? [[0, 0, 0], [0, 0, 0]] : [null, null];
  const base = parts.map((p) => p || 0);
  const bump = (level) => {
    const v = base.slice(0, level + 1);
    v[level] += 1;
    while (v.length < 3) v.push(0);
    return v;
  };
  const nextAtPrecision = bump(precision - 1);
  switch (op) {
    case "":
    case "=":
      return precision === 3 ? [base, bump(2)] : [base, nextAtPrecision];
    case "^": {
      const level = base[0] > 0 || precision === 1 ? 0 : base[1] > 0 || precision === 2 ? 1 : 2;
      return [base, bump(level)];
    }
    case "~":
      return [base, bump(precision === 1 ? 0 : 1)];
    case ">=":
      return [base, null];
    case ">":
      return [precision === 3 ? bump(2) : nextAtPrecision, null];
    case "<":
      return [null, base];
    case "<=":
      return [null, precision === 3 ? bump(2) : nextAtPrecision];
    default:
      return null;
  }
}

function comparatorsOf(set) {
  return set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, "$1").split(/\s+/).filter(Boolean);
}

function satisfiesSet(version, set) {
  const comparators = comparatorsOf(set);
  if (comparators.length === 0) return true;
  for (const comparator of comparators) {
    const b = bounds(comparator);
    if (b === null) return null;
    if (b[0] !== null && compare(version, b[0]) < 0) return false;
    if (b[1] !== null && compare(version, b[1]) >= 0) return false;
  }
  return true;
}

function checkNode(range, versionText) {
  const version = versionText.replace(/^v/, "").split(/[.-]/).slice(0, 3).map(Number);
  const sets = range.split("||");
  const simple = sets.every((set) => comparatorsOf(set).length <= 1);
  const results = sets.map((set) => (set.includes(" - ") ? null : satisfiesSet(version, set)));
  let verdict = "unknown";
  if (results.some((r) => r === true)) verdict = "ok";
  else if (results.every((r) => r === false)) verdict = "mismatch";
  return `${verdict}\t${simple ? "simple" : "complex"}`;
}

function main(argv) {
  const [command, path, arg] = argv;
  let data;
  try {
    data = readPackageJson(path);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 1;
  }
  switch (command) {
    case "validate":
      return 0;
    case "has-script": {
      const script = get(data, `scripts.${arg}`);
      return typeof script === "string" && script.trim() !== "" ? 0 : 1;
    }
    case "get": {
      const value = get(data, arg);
      if (typeof value === "string") process.stdout.write(`${value}\n`);
      return 0;
    }
    case "check-node": {
      const range = get(data, "engines.node");
      if (typeof range !== "string" || range.trim() === "") process.stdout.write("ok\tsimple\n");
      else process.stdout.write(`${checkNode(range.trim(), arg)}\n`);
      return 0;
    }
    default:
      process.stderr.write(`unknown command: ${command}\n`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
