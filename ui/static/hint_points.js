// Runs in the colour points' list (js_on_load): a click on a point's row chooses it, a click on
// its cross removes it. The event names are written out in full because Gradio registers a custom
// event of a gr.HTML only when its quoted name appears in this code.
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-index]');
  if (!button) return;
  const index = Number(button.dataset.index);
  if (button.classList.contains('hint-remove')) trigger('remove', {index});
  else trigger('choose', {index});
});
