// The one entry point of web_demo/vendor/codemirror.js: everything the demo
// imports from CodeMirror 6, bundled once with esbuild (see package.json).
export { basicSetup } from "codemirror";
export { EditorState, EditorSelection, Compartment, StateEffect, StateField, RangeSetBuilder, Transaction, Text, Prec } from "@codemirror/state";
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

// Co-editing (docs/web_demo.md, protocol §5.11): Yjs, its CodeMirror binding, and the
// y-protocols encoders the browser speaks inside `coedit` frames. In this one bundle so
// the binding and the editor share one copy of @codemirror/state and of yjs.
export * as Y from "yjs";
export { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
export * as ySync from "y-protocols/sync";
export * as yAwareness from "y-protocols/awareness";
export * as lib0Encoding from "lib0/encoding";
export * as lib0Decoding from "lib0/decoding";
