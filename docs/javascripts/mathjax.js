window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  svg: { fontCache: "global" },
  options: {
    // typeset only inside the classes below: everything under the page's main area is ignored unless it is
    // (inside) one of them, so a "$" in prose or code is never taken for math
    ignoreHtmlClass: "md-main|md-header|md-footer",
    // pymdownx.arithmatex output, and the markdown cells of the tutorial notebooks
    processHtmlClass: "arithmatex|jp-MarkdownOutput"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
