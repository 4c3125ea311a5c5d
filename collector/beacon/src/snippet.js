// The loading snippet: paste it into every page inside <script>, with the
// beacon's URL and the options as its last two arguments (README.md). It
// defines window.shoptrail as a queue whose methods record each call until
// the beacon loads (asynchronously) and replays them; the beacon then puts
// its own methods on this same object. The e-commerce helpers live here:
// productAdded(p) is track("Product Added", p), whether the beacon has
// loaded or not.
!(function (w, d, src, o) {
  var a = (w.shoptrail = w.shoptrail || [])
  if (a.o) return
  a.o = o
  'page track identify reset consent anonymousId'.split(' ').forEach(function (m) {
    a[m] = function () {
      a.push([m].concat([].slice.call(arguments)))
    }
  })
  'Promotion Viewed,Promotion Clicked,Product List Viewed,Product Clicked,Product Viewed,Product Added,Product Removed,Cart Viewed,Checkout Started,Checkout Step Completed,Payment Info Entered,Order Completed,Products Searched,Product Added to Wishlist,Signed Up,Logged In,Inquiry Started'
    .split(',')
    .forEach(function (e) {
      a[(e.charAt(0).toLowerCase() + e.slice(1)).replace(/ (.)/g, function (_, c) {
        return c.toUpperCase()
      })] = function (p) {
        a.track(e, p)
      }
    })
  var s = d.createElement('script')
  s.async = true
  s.src = src
  ;(d.head || d.documentElement).appendChild(s)
})(window, document, '/s.js', { writeKey: 'YOUR_WRITE_KEY', endpoint: 'https://t.shop.example/v1/batch' })
