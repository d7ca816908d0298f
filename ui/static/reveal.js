// A finished result is brought into view when it is off screen: on a phone the result column
// sits below the controls, out of sight of the button that was just pressed.
(selector) => {
  const target = document.querySelector(selector);
  if (!target) return;
  const box = target.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight * 0.5) target.scrollIntoView({behavior: 'smooth', block: 'start'});
}
