// Runs in the suggested colours (js_on_load): a click on a swatch sends its colour as 'pick'.
element.addEventListener('click', (event) => {
  const swatch = event.target.closest('button[data-color]');
  if (swatch) trigger('pick', {color: swatch.dataset.color});
});
