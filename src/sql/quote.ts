/**
 * Quoting for generated SQL: identifiers always double-quoted (so any name,
 * keyword or mixed case survives), literals as standard strings with quotes
 * doubled, or E'' strings when they contain a backslash.
 */

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteQualified(schema: string, name: string): string {
  return quoteIdent(schema) + '.' + quoteIdent(name);
}

export function quoteLiteral(value: string): string {
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? " E'" + body.replace(/\\/g, '\\\\') + "'" : "'" + body + "'";
}

/**
 * The names of a list setting such as search_path, split as PostgreSQL's
 * SplitIdentifierString does: comma-separated, double-quoted names kept as
 * written ("" for a quote), others lowercased (A-Z only, as for multibyte
 * encodings). Null when the text is no valid list.
 */
export function splitIdentifierList(text: string): string[] | null {
  const names: string[] = [];
  const space = /\s/;
  let i = 0;
  while (i < text.length && space.test(text[i]!)) i++;
  if (i >= text.length) return names;
  for (;;) {
    let name = '';
    if (text[i] === '"') {
      for (i++; ; i++) {
        if (i >= text.length) return null; // unterminated quote
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i++;
        }
        name += text[i];
      }
      i++;
      if (name === '') return null; // an empty quoted name
    } else {
      const start = i;
      while (i < text.length && text[i] !== ',' && !space.test(text[i]!)) i++;
      if (i === start) return null; // an empty name
      name = text.slice(start, i).replace(/[A-Z]/g, (c) => c.toLowerCase());
    }
    names.push(name);
    while (i < text.length && space.test(text[i]!)) i++;
    if (i >= text.length) return names;
    if (text[i] !== ',') return null;
    i++;
    while (i < text.length && space.test(text[i]!)) i++;
  }
}
