// The one entry point of web_demo/vendor/codemirror.js: everything the demo
// imports from CodeMirror 6, bundled once with esbuild (see package.json).
export { basicSetup } from "codemirror";
export { EditorState, EditorSelection, Compartment, StateEffect, StateField, RangeSetBuilder, Transaction, Text } from "@codemirror/state";
export { EditorView, keymap, Decoration, WidgetType, ViewPlugin } from "@codemirror/view";
export { indentWithTab } from "@codemirror/commands";
export { MergeView } from "@codemirror/merge";
export { oneDark } from "@codemirror/theme-one-dark";

import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { markdown } from "@codemirror/lang-markdown";
import { json } from "@codemirror/lang-json";
import { css } from "@codemirror/lang-css";
import { html } from "@codemirror/lang-html";
import { rust } from "@codemirror/lang-rust";
import { yaml } from "@codemirror/lang-yaml";
import { sql } from "@codemirror/lang-sql";
import { xml } from "@codemirror/lang-xml";
import { cpp } from "@codemirror/lang-cpp";
import { go } from "@codemirror/lang-go";
import { java } from "@codemirror/lang-java";

const BY_EXTENSION = {
  js: () => javascript(), mjs: () => javascript(), cjs: () => javascript(),
  jsx: () => javascript({ jsx: true }),
  ts: () => javascript({ typescript: true }), tsx: () => javascript({ jsx: true, typescript: true }),
  py: () => python(), pyi: () => python(),
  md: () => markdown(), markdown: () => markdown(),
  json: () => json(),
  css: () => css(),
  html: () => html(), htm: () => html(),
  rs: () => rust(),
  yml: () => yaml(), yaml: () => yaml(),
  sql: () => sql(),
  xml: () => xml(), svg: () => xml(),
  c: () => cpp(), h: () => cpp(), cc: () => cpp(), cpp: () => cpp(), hpp: () => cpp(),
  go: () => go(),
  java: () => java(),
};

/** The language extension for a file name, or [] when none is known. */
export function languageFor(name) {
  const dot = name.lastIndexOf(".");
  const make = dot >= 0 ? BY_EXTENSION[name.slice(dot + 1).toLowerCase()] : undefined;
  return make ? make() : [];
}
