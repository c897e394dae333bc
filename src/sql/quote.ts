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
