// Runs in the trial's gr.HTML (js_on_load; `element` is the component, `watch` re-runs on a new value).
// Hides the stimulus `data-exposure` ms after it is first on screen (in view, images decoded), and
// then takes the images out of the page altogether: their data URIs leave the DOM and the
// component's value, so nothing in the page can show them again. The answer buttons stay. In a
// background tab or scrolled away, the clock has not started yet.
const expire = (box) => {
  box.querySelectorAll('img').forEach((img) => {
    const blank = document.createElement('div');
    blank.className = 'stimulus-blank';
    img.replaceWith(blank);
  });
  box.classList.add('expired');
  if (typeof props !== 'undefined') props.value = box.outerHTML;
};
const arm = () => {
  const box = element.querySelector('.stimulus');
  if (!box || box.dataset.armed) return;
  box.dataset.armed = '1';
  const ms = Number(box.dataset.exposure || 0);
  if (!ms) return;
  const images = Array.from(box.querySelectorAll('img'));
  const seen = new IntersectionObserver((entries) => {
    if (!entries.some((entry) => entry.isIntersecting)) return;
    seen.disconnect();
    Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
      setTimeout(() => expire(box), ms);
    });
  });
  seen.observe(box);
};
arm();
watch('value', arm);
