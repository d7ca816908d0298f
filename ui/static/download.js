// The admin's CSV export, saved from the text the authenticated call returned: the export is
// never a file on the server. Returns null, which empties the hidden box that carried it.
(text, name) => {
  if (!text) return null;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], {type: 'text/csv'}));
  link.download = name || 'responses.csv';
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  return null;
}
