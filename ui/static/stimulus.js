// Runs in the trial's gr.HTML (js_on_load; `element` is the component, `watch` re-runs on a new value).
// Hides the stimulus `data-exposure` ms after it is first on screen (in view, images decoded); the
// answer buttons stay. In a background tab or scrolled away, the clock has not started yet.
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
      setTimeout(() => box.classList.add('expired'), ms);
    });
  });
  seen.observe(box);
};
arm();
watch('value', arm);
