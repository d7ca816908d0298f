// A finished result is brought into view when it is off screen: on a phone the result column
// sits below the controls, out of sight of the button that was just pressed. Measured once the
// result's pictures are on the page and decoded: before that the column is not yet its height.
(selector) => {
  const target = document.querySelector(selector);
  if (!target) return;
  const bring = () => {
    const box = target.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight * 0.5) target.scrollIntoView({behavior: 'smooth', block: 'start'});
  };
  requestAnimationFrame(() => {
    const images = Array.from(target.querySelectorAll('img'));
    Promise.all(images.map((img) => img.decode().catch(() => null))).then(bring);
  });
}
