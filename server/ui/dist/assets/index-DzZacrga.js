(function(){let e=document.createElement(`link`).relList;if(e&&e.supports&&e.supports(`modulepreload`))return;for(let e of document.querySelectorAll(`link[rel="modulepreload"]`))n(e);new MutationObserver(e=>{for(let t of e)if(t.type===`childList`)for(let e of t.addedNodes)e.tagName===`LINK`&&e.rel===`modulepreload`&&n(e)}).observe(document,{childList:!0,subtree:!0});function t(e){let t={};return e.integrity&&(t.integrity=e.integrity),e.referrerPolicy&&(t.referrerPolicy=e.referrerPolicy),t.credentials=e.crossOrigin===`use-credentials`?`include`:e.crossOrigin===`anonymous`?`omit`:`same-origin`,t}function n(e){if(e.ep)return;e.ep=!0;let n=t(e);fetch(e.href,n)}})();var e,t,n,r,i,a,o,s,c,l,u=Symbol.for(`pv`),d={},f=[],p=/^m(i|n|o|s|text|space)$/,m=Array.isArray,h=f.slice,g=Object.assign;function _(e){e&&e.parentNode&&e.remove()}function v(e,t,n){var r,i,a,o={},s=arguments.length;for(a in t)a==`key`?r=t[a]:a==`ref`&&typeof e!=`function`?i=t[a]:o[a]=t[a];return s>2&&(o.children=s>3?h.call(arguments,2):n),y(e,o,r,i,null)}function y(n,r,i,a,o){var s={type:n,props:r,key:i,ref:a,__k:null,__:null,__b:0,__e:null,__c:null,constructor:u,__v:o||++t,__i:-1,__u:0};return!o&&e.vnode&&e.vnode(s),s}function b(e){return e.children}function x(e,t){this.props=e,this.context=t,this.__g=0}function S(e,t){if(t==null)return e.__&&S(e.__,e.__i+1);for(var n;t<e.__k.length;t++)if((n=e.__k[t])&&n.__e)return n.__e;return typeof e.type!=`function`||e.props.__P?null:S(e)}function C(t){var n,r=t.__v,i=r.__e,a=[],o=[],s=t.__P;s&&((n=g({constructor:u},r)).__v=r.__v+1,e.vnode&&e.vnode(n),A(s,n,r,t.__n,s.namespaceURI,32&r.__u?[i]:null,a,i||S(r),32&r.__u,o),n.__v=r.__v,n.__.__k[n.__i]=n,oe(a,n,o),r.__=r.__e=null,n.__e!=i&&w(n))}function w(e){if((e=e.__)&&e.__c&&!e.props.__P)return e.__e=null,e.__k.some(function(t){return t&&(e.__e=t.__e)}),w(e)}function T(t){(8&t.__g||(t.__g|=8,n.push(t),i++))&&r==e.debounceRendering||((r=e.debounceRendering)||queueMicrotask)(E)}function E(){try{for(var e,t=1;n.length;)n.length>t&&n.sort(a),e=n.shift(),t=n.length,8&e.__g&&C(e)}finally{(i=n.length)&&(r||queueMicrotask)(E)}}function ee(e,t,n,r,i,a,o,s,c,l,u){var p,m,h,g,_,v,y=r.__k||f,b=t.length;for(c=D(n,t,y,c,b),p=0;p<b;p++)(h=n.__k[p])!=null&&(m=~h.__i&&y[h.__i]||d,h.__i=p,v=A(e,h,m,i,a,o,s,c,l,u),g=h.__e,(m.ref!=h.ref||8&m.__u)&&(m.ref&&j(m.ref,null,h,m),h.ref&&u.push(h.ref,h.__c||g,h)),_||=g,4&h.__u?(c=O(h,c,e,!m.__v),m.__e&&(m.__e=null)):typeof h.type==`function`&&v!==void 0?c=v:g&&(c=g.nextSibling),h.__u&=-21);return n.__e=_,c}function D(e,t,n,r,i){var a,o,s,c,l,d,f,p,h,g=n.length,_=g,v=0,x=0,C=e.__k=Array(i);for(a=0;a<i;a++)(o=t[a])!=null&&typeof o!=`boolean`&&typeof o!=`function`?(typeof o!=`object`||o.constructor===String?o=C[a]=y(null,o):m(o)?o=C[a]=y(b,{children:o}):o.constructor===u&&o.__b?o=C[a]=y(o.type,o.props,o.key,o.ref,o.__v):C[a]=o,c=a+v,o.__=e,o.__b=e.__b+1,s=null,~(l=o.__i=k(o,n,c,_))&&(_--,(s=n[l])&&(s.__u|=2)),s&&s.__v?(o.__u|=16,l==c-1?v--:l==c+1?v++:l!=c&&(l>c?v--:v++,x=1)):(~l||(i>g?v--:i<g&&v++),typeof o.type!=`function`&&(o.__u|=4))):C[a]=null;if(x){for(d=[],f=[],a=0;a<i;a++)if((o=C[a])&&16&o.__u){for(v=0,p=d.length;v<p;)d[h=v+p>>1]<o.__i?v=h+1:p=h;d[v]=o.__i,f[a]=v+1}for(v=d.length;a--;)f[a]&&(f[a]==v?v--:C[a].__u|=4)}if(_)for(a=0;a<g;a++)!(s=n[a])||2&s.__u||(s.__e==r&&(r=S(s)),ce(s,s));return r}function O(e,t,n,r){var i,a,o,s;if(typeof e.type==`function`){if(e.props.__P)return t;if(i=e.__k)for(a=0;a<i.length;a++)i[a]&&(i[a].__=e,t=O(i[a],t,n,!1));return t}for(t&&!t.parentNode&&(t=S(e))&&!t.parentNode&&(t=null),o=e.__e,s=t;s&&s.nodeType==8;)s=s.nextSibling;for(o!=s&&(!r&&n.moveBefore&&o.parentNode?n.moveBefore(o,t):n.insertBefore(o,t||null)),t=o;(t&&=t.nextSibling)&&t.nodeType==8&&!t.data.startsWith(`$s`););return t}function k(e,t,n,r){var i,a=e.key,o=e.type,s=t[n],c=s&&!(2&s.__u);if(s===null&&a==null||c&&a==s.key&&o==s.type)return n;if(r>+!!c){for(i=n-1;i>=0;i--)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i;for(i=n+1;i<t.length;i++)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i}return-1}function te(e,t,n){n??=``,t[0]==`-`?e.setProperty(t,n):e[t]=n}function ne(e,t,n,r,i){var a,o;if(t==`style`){if(typeof n==`string`)e.style.cssText=n;else{if(typeof r==`string`&&(e.style.cssText=r=``),r)for(t in r)n&&t in n||te(e.style,t);if(n)for(t in n)r&&n[t]==r[t]||te(e.style,t,n[t])}}else if(t[0]==`o`&&t[1]==`n`)typeof n!=`function`&&(n=null),typeof r!=`function`&&(r=null),(e.__e||={})[t]=n,n&&r||(o=l[t]||(l[t]=re(t)),(e.__a||={})[t]=c,a=t!=(t=t.replace(s,`$1`)),(t=t.slice(2))[0]<`a`&&(t=t.toLowerCase()),n?e.addEventListener(t,o,a):e.removeEventListener(t,o,a));else{if(i==`http://www.w3.org/2000/svg`)t=t.replace(/xlink(H|:h)/,`h`).replace(/sName$/,`s`);else if(t!=`width`&&t!=`height`&&t!=`href`&&t!=`list`&&t!=`form`&&t!=`tabIndex`&&t!=`download`&&t!=`rowSpan`&&t!=`colSpan`&&t!=`role`&&t!=`popover`&&t in e)try{e[t]=n??``;return}catch{}if(typeof n==`function`)return;n==null||!1===n&&t[4]!=`-`?e.removeAttribute(t):e.setAttribute(t,t==`popover`&&n==1?``:n)}}function re(t){return function(n){var r=this.__e;if(r){if(r=r[t],n[o]==null)n[o]=c++;else if(n[o]<this.__a[t])return;return r(e.event?e.event(n):n)}}}function A(t,n,r,i,a,o,s,c,l,d){var p,h,v,y,C,w,T,E,D,O,k,te,ne,re,A,oe,j,M,N=n.type;if(n.constructor!==u)return null;128&r.__u&&(l=32&r.__u,p=r.__c.__z)&&(n.__u|=l,h=o=[],p.nodeType==8?c=ie(p,o):o.push(p),c=o[0]||c),(p=e.__b)&&p(n);e:if(typeof N==`function`){v=s.length;try{if(E=n.props,D=(p=N.prototype)&&p.render,O=(p=N.contextType)&&i[p.__c],k=p?O?O.props.value:p.__:i,(y=r.__c)?(n.__c=y,2&y.__g&&(y.__g|=1)):(D?n.__c=y=new N(E,k):(n.__c=y=new x(E,k),y.constructor=N,y.render=le),O&&O.sub(y),y.state||(y.state={}),y.__n=i,y.__g|=8,y.__h=[],y.__k=[]),D&&(y.__s||(y.__s=y.state),N.getDerivedStateFromProps&&(y.__s==y.state&&(y.__s=g({},y.__s)),g(y.__s,N.getDerivedStateFromProps(E,y.__s)))),C=y.props,w=y.state,y.__v=n,r.__c){if(E!==C&&D&&!N.getDerivedStateFromProps&&y.componentWillReceiveProps&&y.componentWillReceiveProps(E,k),n.__v==r.__v&&!(8&y.__g)||!(4&y.__g)&&y.shouldComponentUpdate&&!1===y.shouldComponentUpdate(E,y.__s,k)){n.__v!=r.__v&&(y.props=E,y.state=y.__s,y.__g&=-9),n.__e=r.__e,n.__k=r.__k,n.__k.some(function(e){e&&(e.__=n)}),f.push.apply(y.__h,y.__k),y.__k=[],y.__h.length&&s.push(y),c=S(r);break e}y.componentWillUpdate&&y.componentWillUpdate(E,y.__s,k),D&&y.componentDidUpdate&&y.__h.push(function(){y.componentDidUpdate(C,w,T)})}else D&&!N.getDerivedStateFromProps&&y.componentWillMount&&y.componentWillMount(),D&&y.componentDidMount&&y.__h.push(y.componentDidMount);y.context=k,y.props=E,y.__P=t,y.__g&=-5,te=e.__r,ne=D?25:0;do y.__g&=-9,te&&te(n),p=y.render(y.props,y.state=y.__s,y.context);while(8&y.__g&&++ne<25);D&&(f.push.apply(y.__h,y.__k),y.__k=[]),y.state=y.__s,y.getChildContext&&(i=g({},i,y.getChildContext())),D&&r.__c&&y.getSnapshotBeforeUpdate&&(T=y.getSnapshotBeforeUpdate(C,w)),re=p&&p.type===b&&p.key==null?p.props.children:p,E.__P&&(p=c,a=(t=E.__P).namespaceURI,l=o=null,r.props&&r.props.__P!=t&&(r.__k.some(function(e){e&&ce(e,e)}),r.__k=null),c=r.__k?S(r,0):null),c=ee(t,m(re)?re:[re],n,r,i,a,o,s,c,l,d),E.__P&&(n.__e=null,c=p),n.__u&=-161,h&&h.some(_),y.__h.length&&s.push(y),1&y.__g&&(y.__g&=-4)}catch(t){if(s.length=v,n.__v=null,l||o){if(t&&t.then){if(n.__u|=128|l,o){for(~(j=o.indexOf(c||void 0))||(j=o.length);(M=o[j-1])&&M.nodeType==8;)j--;for(;j<o.length;j++)if(M=o[j]){if(o[j]=null,A){if(M==oe)break}else{if(M.nodeType!=8)break;M.data.startsWith(`$s`)&&(oe=ie(A=M))}}}if(!A){for(;c&&c.nodeType==8&&c.nextSibling;)c=c.nextSibling;A=c}(p=ie(A=n.__c.__z||(n.__c.__z=A)))?(n.__e=A,c=p):n.__e=c,c&&=c.nextSibling}else o&&o.some(_)}else n.__e=r.__e;n.__k||=r.__k||[],t&&t.then||ae(n),e.__e(t,n,r)}}else c=n.__e=se(r.__e,n,r,i,a,o,s,l,d,t);return(p=e.diffed)&&p(n),c}function ie(e,t){if(e&&e.nodeType==8&&e.data.startsWith(`$s`))for(var n=1;e=e.nextSibling;){if(e.nodeType==8){if(e.data.startsWith(`$s`))n++;else if(e.data.startsWith(`/$s`)&&!--n)return e}t&&t.push(e)}}function ae(e){e&&(e.__c&&(e.__c.__g|=4),e.__k&&e.__k.some(ae))}function oe(t,n,r){for(var i=0;i<r.length;)j(r[i++],r[i++],r[i++]);e.__c&&e.__c(n,t),t.some(function(n){try{t=n.__h,n.__h=[],t.some(function(e){e.call(n)})}catch(t){e.__e(t,n.__v)}})}function se(t,n,r,i,a,o,s,c,l,u){var f,g,v,y,b,x,C,w,T=r.props||d,E=n.props,D=n.type;if(D==`svg`?a=`http://www.w3.org/2000/svg`:D==`math`?a=`http://www.w3.org/1998/Math/MathML`:a||=`http://www.w3.org/1999/xhtml`,o){for(f=0;f<o.length;f++)if((b=o[f])&&(D?b.localName==D:b.nodeType==3)){t=b,o[f]=null;break}}if(!t){if(w=u.ownerDocument||document,!D)return w.createTextNode(E);t=w.createElementNS(a,D,E.is?E:u),c&&=(e.__m&&e.__m(n,o),!1),o=null}if(D){if(u=D==`template`&&t.content||t,o=D==`textarea`&&E.defaultValue!=null?null:o&&h.call(u.childNodes),!c&&o)for(T={},f=0;f<t.attributes.length;f++)T[(b=t.attributes[f]).name]=b.value;for(f in T)b=T[f],f==`dangerouslySetInnerHTML`?v=b:f==`children`||f in E||f==`value`&&`defaultValue`in E||f==`checked`&&`defaultChecked`in E||ne(t,f,null,b,a);for(f in E)b=E[f],f==`children`?y=b:f==`dangerouslySetInnerHTML`?g=b:f==`value`?x=b:f==`checked`?C=b:c&&typeof b!=`function`||T[f]===b||ne(t,f,b,T[f],a);g?(c||v&&(g.__html==v.__html||g.__html==t.innerHTML)||(t.innerHTML=g.__html),n.__k=[]):(v&&(t.textContent=``),(D==`foreignObject`||a==`http://www.w3.org/1998/Math/MathML`&&p.test(D))&&(a=`http://www.w3.org/1999/xhtml`),ee(u,m(y)?y:[y],n,r,i,a,o,s,o?o[0]:r.__k&&S(r,0),c,l),o&&o.some(_)),c&&D!=`textarea`||(f=`value`,D==`progress`&&x==null?t.removeAttribute(f):x==null||x===t[f]&&(D!=`progress`||x)||ne(t,f,x,T[f],a),f=`checked`,C!=null&&C!=t[f]&&ne(t,f,C,T[f],a))}else T===E||c&&t.data==E||(t.data=E);return t}function j(t,n,r,i){try{typeof t==`function`?n?n.__x=t(n)||1:(i&&=i.__c||i.__e)&&(n=i.__x)&&(i.__x=null,typeof n==`function`?n():t(null)):t.current=n}catch(t){e.__e(t,r)}}function ce(t,n,r){var i,a,o,s;if(e.unmount&&e.unmount(t),!(i=t.ref)||i.current&&i.current!=t.__e||j(i,null,n,t),i=t.__c){if(i.componentWillUnmount)try{i.componentWillUnmount()}catch(t){e.__e(t,n)}i.__P=i.__n=null}if(i=t.__k)for(s=0;s<i.length;s++)i[s]&&ce(i[s],n,typeof t.type!=`function`||r&&!t.props.__P);!r&&(i=t.__c)&&(i=i.__z)&&(a=ie(i,o=[]))&&(i==t.__e&&o.some(_),_(a),_(i)),r||_(t.__e),t.__e=t.__c=t.__=null}function le(e,t,n){return this.constructor(e,n)}function M(t,n){var r,i,a,o;e.__&&e.__(t,n),n.nodeType==9&&(n=n.documentElement),i=(r=t&&32&t.__u)?null:n.__k,n.__k=y(b,{children:[t]}),a=[],o=[],A(n,n.__k,i||d,d,n.namespaceURI,i?null:n.firstChild?h.call(n.childNodes):null,a,i?i.__e:n.firstChild,r,o),oe(a,n.__k,o),n.__k.props.children=null}e={__e:function(e,t,n,r){for(var a,o,s;t=t.__;)if((a=t.__c)&&!(1&a.__g)){a.__g|=4;try{if((s=(o=a.constructor)&&o.getDerivedStateFromError)&&a.setState(o.getDerivedStateFromError(e)),a.componentDidCatch&&(a.componentDidCatch(e,r||{}),s=1),s&&8&a.__g)return void(a.__g|=2)}catch(t){e=t}}throw i=0,e}},t=0,x.prototype.setState=function(e,t){var n=this.__s;n&&n!=this.state||(n=this.__s=g({},this.state)),typeof e==`function`&&(e=e(g({},n),this.props)),e&&(g(n,e),this.__v&&(t&&this.__k.push(t),T(this)))},x.prototype.forceUpdate=function(e){this.__v&&(this.__g|=4,e&&this.__h.push(e),T(this))},x.prototype.render=b,n=[],i=0,a=function(e,t){return e.__v.__b-t.__v.__b},o=Symbol(),s=/(PointerCapture)$|Capture$/i,c=0,l={};var N=function(e,t,n,r){var i;t[0]=0;for(var a=1;a<t.length;a++){var o=t[a++],s=t[a]?(t[0]|=o?1:2,n[t[a++]]):t[++a];o===3?r[0]=s:o===4?r[1]=Object.assign(r[1]||{},s):o===5?(r[1]=r[1]||{})[t[++a]]=s:o===6?r[1][t[++a]]+=s+``:o?(i=e.apply(s,N(e,s,n,[``,null])),r.push(i),s[0]?t[0]|=2:(t[a-2]=0,t[a]=i)):r.push(s)}return r},ue=new Map;function de(e){var t=ue.get(this);return t||(t=new Map,ue.set(this,t)),(t=N(this,t.get(e)||(t.set(e,t=function(e){for(var t,n,r=1,i=``,a=``,o=[0],s=function(e){r===1&&(e||(i=i.replace(/^\s*\n\s*|\s*\n\s*$/g,``)))?o.push(0,e,i):r===3&&(e||i)?(o.push(3,e,i),r=2):r===2&&i===`...`&&e?o.push(4,e,0):r===2&&i&&!e?o.push(5,0,!0,i):r>=5&&((i||!e&&r===5)&&(o.push(r,0,i,n),r=6),e&&(o.push(r,e,0,n),r=6)),i=``},c=0;c<e.length;c++){c&&(r===1&&s(),s(c));for(var l=0;l<e[c].length;l++)t=e[c][l],r===1?t===`<`?(s(),o=[o],r=3):i+=t:r===4?i===`--`&&t===`>`?(r=1,i=``):i=t+i[0]:a?t===a?a=``:i+=t:t===`"`||t===`'`?a=t:t===`>`?(s(),r=1):r&&(t===`=`?(r=5,n=i,i=``):t===`/`&&(r<5||e[c][l+1]===`>`)?(s(),r===3&&(o=o[0]),r=o,(o=o[0]).push(2,0,r),r=0):t===` `||t===`	`||t===`
`||t===`\r`?(s(),r=2):i+=t),r===3&&i===`!--`&&(r=4,o=o[0])}return s(),o}(e)),t),arguments,[])).length>1?t:t[0]}var P=de.bind(v),fe,F,pe,me,he=Object.is,ge=0,_e=[],ve=[],I=e,ye=I.__b,be=I.__r,xe=I.diffed,Se=I.__c,Ce=I.unmount,we=I.__;function Te(e,t){I.__h&&I.__h(F,e,ge||t),ge=0;var n=F.__H||(F.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function L(e){return ge=1,Ee(Le,e)}function Ee(e,t,n){var r=Te(fe++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):Le(void 0,t),function(e){var t=(r.__N||r.__)[0],n=r.t(t,e);he(t,n)||(r.__N=[n,r.__[1]],r.__c.setState({}))}],r.__c=F,!F.__f)){F.__f=!0;var i=F.shouldComponentUpdate;F.shouldComponentUpdate=function(e,t,n){var r=this.__H;if(!r)return!0;var a=!1,o=this.props!=e;if(r.__.some(function(e){e.__N&&(a=!0,he(e.__[0],e.__N[0])||(o=!0))}),i){var s=i.call(this,e,t,n);return a?s||o:s}return!a||o}}return r.__}function R(e,t){var n=Te(fe++,3);!I.__s&&Ie(n.__H,t)&&(n.__P=!0,n.__=e,n.u=t,F.__H.__h.push(n))}function De(e){return ge=5,Oe(function(){return{current:e}},[])}function Oe(e,t){var n=Te(fe++,7);return Ie(n.__H,t)&&(n.__=e(),n.__H=t),n.__}function ke(e,t){return ge=8,Oe(function(){return e},t)}function Ae(){var e;do{for(;e=ve.shift();)try{Pe(e)}catch(t){I.__e(t,{__:(e=e.__P)&&e.__v})}for(;e=_e.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(Pe),t.__h.some(Fe),t.__h=[]}catch(n){t.__h=[],I.__e(n,e.__v)}}}while(ve.length)}I.__b=function(e){F=null,ye&&ye(e)},I.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),we&&we(e,t)},I.__r=function(e){be&&be(e),fe=0;var t=(F=e.__c).__H;t&&(pe==F?F.__h=[]:(t.__h.some(Pe),t.__h.some(Fe),fe=0),t.__h=[],t.__.some(function(e){e.__N&&(e.__=e.__N),e.u=e.__N=void 0})),pe=F},I.diffed=function(e){xe&&xe(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&Ne(_e.push(t)),t.__H.__.some(function(e){e.u&&(e.__H=e.u)})),pe=F=null},I.__c=function(e,t){t.some(function(e){try{e.__h.some(Pe),e.__h=e.__h.filter(function(e){return!e.__||Fe(e)})}catch(t){e.__h=[function(){throw t}]}}),Se&&Se(e,t)},I.unmount=function(e){Ce&&Ce(e);var t,n,r=e.__c;r&&r.__H&&(r.__H.__.some(function(r){try{if(r.__P&&r.__c){if(n===void 0){for(n=e.__;n&&(!n.__c||!n.__c.__P);)n=n.__;n&&=n.__c}r.__P=n,Ne(ve.push(r))}else Pe(r)}catch(e){t=e}}),r.__H=void 0,t&&I.__e(t,r.__v))};var je=typeof requestAnimationFrame==`function`;function Me(e){var t,n=function(){clearTimeout(r),je&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);je&&(t=requestAnimationFrame(n))}function Ne(e){e!=1&&me==I.requestAnimationFrame||((me=I.requestAnimationFrame)||Me)(Ae)}function Pe(e){var t=F,n=e.__c;typeof n==`function`&&(e.__c=void 0,n()),F=t}function Fe(e){var t=F;e.__c=e.__(),F=t}function Ie(e,t){return!e||e.length!=t.length||t.some(function(t,n){return!he(t,e[n])})}function Le(e,t){return typeof t==`function`?t(e):t}var z=`/ui/main`,Re=new Set;function B(e,{replace:t=!1}={}){t?history.replaceState(null,``,e):history.pushState(null,``,e);for(let e of Re)e()}addEventListener(`popstate`,()=>{for(let e of Re)e()});function ze(){let[,e]=L(0);return R(()=>{let t=()=>e(e=>e+1);return Re.add(t),()=>Re.delete(t)},[]),{path:location.pathname,search:new URLSearchParams(location.search)}}function Be(e,t){let n=e.split(`/`).filter(Boolean),r=t.split(`/`).filter(Boolean),i={};for(let e=0;e<Math.max(n.length,r.length);e++){let t=n[e];if(t===void 0)return null;if(t.startsWith(`:`)){let n=t.endsWith(`?`),a=t.slice(1,n?-1:void 0);if(r[e]===void 0){if(!n)return null;continue}i[a]=decodeURIComponent(r[e])}else if(t!==r[e])return null}return i}var V=encodeURIComponent,H={flows:()=>`${z}/flows`,newFlow:()=>`${z}/flows/new`,flow:(e,t,n)=>`${z}/flows/edit/${V(e)}/${V(t)}${n?`/${n}`:``}`,executions:e=>`${z}/executions${e?`?${new URLSearchParams(e)}`:``}`,execution:(e,t,n,r)=>`${z}/executions/${V(e)}/${V(t)}/${V(n)}${r?`/${r}`:``}`,triggers:()=>`${z}/admin/triggers`,engine:()=>`${z}/engine`};function U({href:e,children:t,...n}){return P`<a href=${e} onClick=${t=>{t.defaultPrevented||t.button!==0||t.metaKey||t.ctrlKey||t.shiftKey||t.altKey||(t.preventDefault(),B(e))}} ...${n}>${t}</a>`}var Ve=`/api/v1/main`,He=class extends Error{constructor(e,t,n){super(t),this.status=e,this.body=n}};async function Ue(e,t,{body:n,type:r,query:i}={}){let a=t.startsWith(`/`)&&!t.startsWith(`/api/v1/main`)&&!t.startsWith(`/api/`)?Ve+t:t,o=i?qe(i):``;o&&(a+=(a.includes(`?`)?`&`:`?`)+o);let s={},c=n;n!==void 0&&!(n instanceof FormData)&&(s[`content-type`]=r||`application/json`,c=typeof n==`string`?n:JSON.stringify(n));let l=await fetch(a,{method:e,headers:s,body:c}),u=await l.text(),d=null;try{d=u?JSON.parse(u):null}catch{d=null}if(!l.ok){let e=d&&(d.message||d.error)||u||l.statusText;throw new He(l.status,e,d)}return d??u}var W=(e,t)=>Ue(`GET`,e,{query:t}),G=(e,t,n={})=>Ue(`POST`,e,{body:t,...n}),We=(e,t,n={})=>Ue(`PUT`,e,{body:t,...n}),Ge=(e,t)=>Ue(`DELETE`,e,{query:t}),K=encodeURIComponent,q={flows:e=>W(`/flows/search`,e),flow:(e,t)=>W(`/flows/${K(e)}/${K(t)}`,{source:!0}),revisions:(e,t)=>W(`/flows/${K(e)}/${K(t)}/revisions`),createFlow:e=>G(`/flows`,e,{type:`application/x-yaml`}),updateFlow:(e,t,n)=>We(`/flows/${K(e)}/${K(t)}`,n,{type:`application/x-yaml`}),validate:e=>G(`/flows/validate`,e,{type:`application/x-yaml`}),executions:e=>W(`/executions/search`,e),execution:e=>W(`/executions/${K(e)}`),trigger:(e,t,n)=>G(`/executions/${K(e)}/${K(t)}`,n),kill:e=>Ge(`/executions/${K(e)}/kill`),resume:(e,t)=>G(`/executions/${K(e)}/actions/resume`,t??new FormData),restart:e=>G(`/executions/${K(e)}/actions/restart`,void 0),replay:(e,t)=>G(`/executions/${K(e)}/actions/replay`,void 0,{query:t?{taskRunId:t}:void 0}),triggers:e=>W(`/triggers/search`,e),setTriggerDisabled:(e,t)=>G(`/triggers/set-disabled/by-triggers`,{triggers:[e],disabled:t})};function Ke(e,t){let n=new EventSource(e);for(let[e,r]of Object.entries(t))e===`error`?n.onerror=r:n.addEventListener(e,e=>r(e.data,e));return()=>n.close()}function qe(e){let t=new URLSearchParams;for(let[n,r]of Object.entries(e))if(r!=null&&r!==``)for(let e of Array.isArray(r)?r:[r])t.append(n,String(e));return t.toString()}var Je={CREATED:{color:`#1761FD`,running:!0,killable:!0},RESTARTED:{color:`#1761FD`,running:!1,killable:!0},SUCCESS:{color:`#029E73`,running:!1,killable:!1},RUNNING:{color:`#8405FF`,running:!0,killable:!0},KILLING:{color:`#FCE07C`,running:!0,killable:!0,dark:!0},KILLED:{color:`#FCE07C`,running:!1,killable:!1,dark:!0},WARNING:{color:`#DD5F00`,running:!1,killable:!1},FAILED:{color:`#AB0009`,running:!1,killable:!1},PAUSED:{color:`#918BA9`,running:!0,killable:!0},CANCELLED:{color:`#918BA9`,running:!1,killable:!1},SKIPPED:{color:`#918BA9`,running:!1,killable:!1},QUEUED:{color:`#918BA9`,running:!1,killable:!1},RETRYING:{color:`#918BA9`,running:!1,killable:!0},RETRIED:{color:`#918BA9`,running:!1,killable:!1},BREAKPOINT:{color:`#918BA9`,running:!0,killable:!0}},Ye=Object.keys(Je),Xe=new Set([`SUCCESS`,`WARNING`,`FAILED`,`KILLED`,`CANCELLED`,`SKIPPED`,`RETRIED`]),Ze=e=>Xe.has(e),Qe=e=>(Je[e]||Je.CREATED).color;function $e({state:e}){let t=Je[e]?.dark;return P`<span class="state" data-state=${e}
    style=${`background:${Qe(e)};color:${t?`#222`:`#fff`}`}>${e}</span>`}function J({error:e}){return e?P`<div class="error" role="alert">${e.status?`${e.status}: `:``}${e.message||String(e)}</div>`:null}function et({tabs:e,current:t,href:n}){return P`<nav class="tabs">${e.map(([e,r])=>P`<${U} href=${n(e)} class=${t===e?`tab active`:`tab`}>${r}</${U}>`)}</nav>`}function tt(e,t){let[n,r]=L({value:void 0,error:null,loading:!0}),i=De(0),a=ke(()=>{let t=++i.current;r(e=>({...e,loading:!0})),Promise.resolve().then(e).then(e=>t===i.current&&r({value:e,error:null,loading:!1}),e=>t===i.current&&r({value:void 0,error:e,loading:!1}))},t);return R(a,[a]),{...n,reload:a}}function nt(e,t=!0){let[n,r]=L(Date.now());return R(()=>{if(!t)return;let n=setInterval(()=>r(Date.now()),e);return()=>clearInterval(n)},[e,t]),n}function rt({value:e}){return P`<pre class="json">${JSON.stringify(e,null,2)}</pre>`}function it({map:e}){let t=Object.entries(e||{});return t.length?P`<table class="kv"><tbody>${t.map(([e,t])=>P`<tr><th>${e}</th><td>${typeof t==`object`&&t?P`<${rt} value=${t} />`:String(t)}</td></tr>`)}</tbody></table>`:P`<p class="muted">None.</p>`}function at({labels:e}){return e?.length?P`<span class="labels">${e.map(e=>P`<span class="label">${e.key}:${e.value}</span>`)}</span>`:null}var ot=50;function st(){let{search:e}=ze(),t=e.get(`q`)||``,n=e.get(`namespace`)||``,r=Math.max(1,Number(e.get(`page`))||1),[i,a]=L(t),o=tt(()=>q.flows({q:t,namespace:n,page:r,size:ot,sort:`id:asc`}),[t,n,r]),s=tt(async()=>{let e=await q.flows({size:1e3});return[...new Set(e.results.map(e=>e.namespace))].sort()},[]),c=e=>{let i=new URLSearchParams({q:t,namespace:n,page:String(r),...e});for(let[e,t]of[...i])(!t||e===`page`&&t===`1`)&&i.delete(e);B(`${H.flows()}${i.size?`?${i}`:``}`)},l=o.value?.results||[],u=o.value?.total||0,d=Map.groupBy?Map.groupBy(l,e=>e.namespace):ct(l);return P`
    <div class="toolbar">
      <h1 class="grow">Flows</h1>
      <${U} href=${H.newFlow()}><button class="primary">Create</button></${U}>
    </div>
    <form class="toolbar" onSubmit=${e=>{e.preventDefault(),c({q:i,page:`1`})}}>
      <input type="search" placeholder="Search flows" value=${i} aria-label="Search flows"
        onInput=${e=>a(e.currentTarget.value)} />
      <select aria-label="Namespace" value=${n} onChange=${e=>c({namespace:e.currentTarget.value,page:`1`})}>
        <option value="">All namespaces</option>
        ${(s.value||[]).map(e=>P`<option value=${e}>${e}</option>`)}
      </select>
      <button type="submit">Search</button>
      <span class="muted">${u} flow${u===1?``:`s`}</span>
    </form>
    <${J} error=${o.error} />
    ${[...d].map(([e,t])=>P`
      <div class="panel">
        <h2>${e}</h2>
        <table><thead><tr><th>Id</th><th>Revision</th><th>Labels</th><th>Triggers</th><th>Description</th></tr></thead>
        <tbody>${t.map(e=>P`
          <tr data-flow=${`${e.namespace}.${e.id}`}>
            <td><${U} href=${H.flow(e.namespace,e.id)}>${e.id}</${U}>${e.disabled?P` <span class="muted">(disabled)</span>`:null}</td>
            <td>${e.revision}</td>
            <td><${at} labels=${lt(e.labels)} /></td>
            <td>${(e.triggers||[]).map(e=>e.type.split(`.`).pop()).join(`, `)}</td>
            <td class="muted">${e.description||``}</td>
          </tr>`)}
        </tbody></table>
      </div>`)}
    ${!o.loading&&!l.length?P`<p class="muted">No flow found.</p>`:null}
    <${ut} page=${r} size=${ot} total=${u} onPage=${e=>c({page:String(e)})} />`}function ct(e){let t=new Map;for(let n of e)t.set(n.namespace,[...t.get(n.namespace)||[],n]);return t}function lt(e){return e?Array.isArray(e)?e:Object.entries(e).map(([e,t])=>({key:e,value:String(t)})):[]}function ut({page:e,size:t,total:n,onPage:r}){let i=Math.max(1,Math.ceil(n/t));return i<=1?null:P`<div class="pager">
    <button disabled=${e<=1} onClick=${()=>r(1)}>«</button>
    <button disabled=${e<=1} onClick=${()=>r(e-1)}>‹</button>
    <span>page ${e} of ${i}</span>
    <button disabled=${e>=i} onClick=${()=>r(e+1)}>›</button>
    <button disabled=${e>=i} onClick=${()=>r(i)}>»</button>
  </div>`}var dt=`modulepreload`,ft=function(e){return`/ui/`+e},pt={},mt={},ht=function(e){return e.pathname.endsWith(`.css`)},gt=function(e,t,n){if(t in e)return e[t];let r=n();if(!r){e[t]=void 0;return}let i=r.then(()=>{e[t]=void 0},n=>{throw delete e[t],n});return e[t]=i,i},_t=function(e,t,n){let r=Promise.resolve();if(t&&t.length>0){let e,i=document.querySelector(`meta[property=csp-nonce]`),a=i?.nonce||i?.getAttribute(`nonce`);function o(e){return Promise.all(e.map(e=>Promise.resolve(e).then(e=>({status:`fulfilled`,value:e}),e=>({status:`rejected`,reason:e}))))}function s(e){return import.meta.resolve?new URL(import.meta.resolve(e)):new URL(e,import.meta.url)}r=o(t.map(t=>{t=ft(t,n);let r=s(t),i=ht(r);return gt(pt,r.href,()=>{if(e===void 0){e={all:new Set,styles:new Set};let t=document.getElementsByTagName(`link`);for(let n=t.length-1;n>=0;n--){let r=t[n];e.all.add(r.href),r.rel===`stylesheet`&&e.styles.add(r.href)}}let t=i?e.styles:e.all,n=i?mt[r.href]:void 0;if(!n&&t.has(r.href))return;let o=document.createElement(`link`);if(o.rel=i?`stylesheet`:dt,i||(o.as=`script`),o.crossOrigin=``,o.href=r.href,a&&o.setAttribute(`nonce`,a),n&&delete mt[r.href],n?.isConnected?n.replaceWith(o):document.head.appendChild(o),i)return new Promise((e,t)=>{let n=i=>{o.removeEventListener(`load`,n),o.removeEventListener(`error`,n),i.type===`error`?(mt[r.href]=o,t(Error(`Unable to preload CSS for ${r}`))):e(i)};o.addEventListener(`load`,n),o.addEventListener(`error`,n)})})}).filter(e=>e!==void 0))}function i(e){let t=new Event(`vite:preloadError`,{cancelable:!0});if(t.payload=e,window.dispatchEvent(t),!t.defaultPrevented)throw e}return r.then(t=>{for(let e of t||[])e.status===`rejected`&&i(e.reason);return e().catch(i)})},vt=300;function yt(e){let t=[0];return e.split(`
`).forEach((e,n)=>{e.trimEnd()===`---`&&(n===0?t[0]=1:t.push(n+1))}),t}function bt(e,t,n){let r=e.line>0,i=Math.min(n.lines,t+(r?e.line:1)),a=n.line(i),o=r&&e.column>0?e.column:1,s=Math.min(a.from+o-1,a.to),c=a.from+a.text.trimEnd().length,l=r?`line ${i}${e.column>0?`, column ${e.column}`:``}: `:``,u=`${e.path?`${e.path}: `:``}${e.message}`;return{from:s,to:r?Math.max(s,c):a.to,line:i,column:o,text:`${l}${u}`,message:u}}function xt(e,t){let n=yt(t.toString()),r=[],i=[],a=[];for(let o of Array.isArray(e)?e:[]){let e=Array.isArray(o.problems)?o.problems:[],s=n[o.index]??0;r.push(...e.map(e=>bt(e,s,t))),!e.length&&o.constraints&&i.push(o.constraints),Array.isArray(o.warnings)&&a.push(...o.warnings.map(String))}return r.sort((e,t)=>e.from-t.from),{checking:!1,problems:r,constraints:i,warnings:a}}function St({report:e,onPick:t}){let{checking:n,error:r,problems:i=[],constraints:a=[],warnings:o=[]}=e,s=i.length+a.length,c=n?`Checking…`:r?`Could not validate: ${r.message||r}`:s?`${s} problem${s>1?`s`:``}`:`Valid flow.`;return P`
    <div class="editor-report">
      <div class=${`editor-status${s&&!n?` bad`:``}`} data-testid="validation-status">${c}</div>
      <ul class="problems" data-testid="problems">
        ${i.map(e=>P`<li key=${`${e.from}:${e.text}`} data-line=${e.line}>
          <a href="#" onClick=${n=>{n.preventDefault(),t(e)}}>${e.text}</a></li>`)}
        ${a.map(e=>P`<li class="constraint">${e}</li>`)}
      </ul>
      ${o.length>0&&P`<ul class="warnings">${o.map(e=>P`<li>${e}</li>`)}</ul>`}
    </div>`}function Ct({value:e,onChange:t,onSave:n}){let r=De(null),i=De(null),a=De({});a.current={onChange:t,onSave:n};let[o,s]=L({checking:!0});return R(()=>{let t=!0,n=async e=>{let n=e.state.doc,r;try{r=xt(await q.validate(n.toString()),n)}catch(e){r={checking:!1,error:e,problems:[]}}return!t||e.state.doc!==n?[]:(s(r),r.problems.map(e=>({from:e.from,to:e.to,severity:`error`,message:e.message})))},o=null;return _t(async()=>{let{basicSetup:e,EditorView:t,yaml:n,linter:r,lintGutter:i}=await import(`./cm-BXJMzhQK.js`);return{basicSetup:e,EditorView:t,yaml:n,linter:r,lintGutter:i}},[]).then(({basicSetup:c,EditorView:l,yaml:u,linter:d,lintGutter:f})=>{t&&(o=new l({doc:e,parent:r.current,extensions:[c,u(),f(),d(n,{delay:vt}),l.updateListener.of(e=>{e.docChanged&&(s(e=>({...e,checking:!0})),a.current.onChange?.(e.state.doc.toString()))})]}),i.current=o)},e=>t&&s({checking:!1,error:e,problems:[]})),()=>{t=!1,o?.destroy()}},[]),P`
    <div onKeyDown=${e=>{(e.ctrlKey||e.metaKey)&&e.key.toLowerCase()===`s`&&a.current.onSave&&(e.preventDefault(),a.current.onSave())}}>
      <div class="editor" data-testid="flow-editor" ref=${r}></div>
      <${St} report=${o} onPick=${e=>{i.current&&(i.current.dispatch({selection:{anchor:e.from},scrollIntoView:!0}),i.current.focus())}} />
    </div>`}var wt=44,Tt=130,Et=300,Dt=26,Ot=18,kt=10,At=22,jt=38,Mt=7.2,Nt=8,Pt=e=>typeof e==`object`&&!!e&&!Array.isArray(e),Ft=e=>Pt(e)&&typeof e.id==`string`&&typeof e.type==`string`,Y=e=>Array.isArray(e)&&e.length>0&&e.every(Ft),It=(e,t)=>e.type.split(`.`).pop()===t,Lt=e=>String(e||``).split(`.`).pop();function Rt(e){let t=Bt(e);return t?{kind:`group`,task:e,body:t}:{kind:`task`,task:e}}var zt=e=>({kind:`seq`,items:e.map(Rt)}),X=(e,t,n)=>({kind:`branch`,label:e,tone:n,body:zt(t)});function Bt(e){let t=[];if(It(e,`Dag`)&&Array.isArray(e.tasks)?t.push(Vt(e.tasks)):Y(e.tasks)&&t.push(It(e,`Parallel`)?{kind:`row`,items:e.tasks.map(Rt)}:zt(e.tasks)),Y(e.then)&&t.push(X(`then`,e.then)),Y(e.else)&&t.push(X(`else`,e.else)),Pt(e.cases)){for(let[n,r]of Object.entries(e.cases))Y(r)&&t.push(X(`case ${n}`,r));Y(e.defaults)&&t.push(X(`defaults`,e.defaults))}return Y(e.errors)&&t.push(X(`errors`,e.errors,`error`)),Y(e.finally)&&t.push(X(`finally`,e.finally)),Y(e.afterExecution)&&t.push(X(`afterExecution`,e.afterExecution)),t.length?t.length===1?t[0]:{kind:`row`,items:t}:null}function Vt(e){return{kind:`dag`,nodes:e.filter(e=>Ft(e?.task)).map(e=>({id:e.task.id,block:Rt(e.task),deps:Array.isArray(e.dependsOn)?e.dependsOn.filter(e=>typeof e==`string`):[]}))}}function Ht(e){let t=[];return Y(e.tasks)&&t.push(zt(e.tasks)),Y(e.errors)&&t.push(X(`errors`,e.errors,`error`)),Y(e.finally)&&t.push(X(`finally`,e.finally)),Y(e.afterExecution)&&t.push(X(`afterExecution`,e.afterExecution)),t.length?t.length===1?t[0]:{kind:`row`,items:t}:null}var Ut=(e,t=Mt)=>Math.ceil(String(e).length*t);function Wt(e,t,n){let r=Math.floor(t/n);return e.length<=r?e:`${e.slice(0,Math.max(1,r-1))}…`}function Gt(e){switch(e.kind){case`task`:return Kt(e.task);case`seq`:return qt(e.items.map(Gt));case`row`:return Jt(e.items.map(Gt));case`branch`:return Xt(e);case`group`:return Zt(e);case`dag`:return $t(e.nodes);default:throw Error(`unknown block ${e.kind}`)}}function Kt(e){let t=Lt(e.type),n=Math.min(Et,Math.max(Tt,Ut(e.id)+20,Ut(t,6.4)+20));return{w:n,h:wt,draw:(r,i)=>P`
    <g class="node" data-task=${e.id} transform=${`translate(${r},${i})`}>
      <title>${e.id} (${e.type})</title>
      <rect width=${n} height=${wt} rx="5" />
      <text class="id" x="10" y="18">${Wt(e.id,n-20,Mt)}</text>
      <text class="type" x="10" y="34">${Wt(t,n-20,6.4)}</text>
    </g>`}}function qt(e){if(!e.length)return Yt(`no tasks`);let t=Math.max(...e.map(e=>e.w));return{w:t,h:e.reduce((e,t)=>e+t.h,0)+Dt*(e.length-1),draw:(n,r)=>{let i=[],a=r;return e.forEach((e,r)=>{r>0&&i.push(en(n+t/2,a-Dt,n+t/2,a)),i.push(e.draw(n+(t-e.w)/2,a)),a+=e.h+Dt}),i}}}function Jt(e){return{w:e.reduce((e,t)=>e+t.w,0)+Ot*(e.length-1),h:Math.max(...e.map(e=>e.h)),draw:(t,n)=>{let r=t;return e.map(e=>{let t=e.draw(r,n);return r+=e.w+Ot,t})}}}function Yt(e){let t=Tt;return{w:t,h:At,draw:(n,r)=>P`<text class="note" x=${n+t/2} y=${r+15} text-anchor="middle">${e}</text>`}}function Xt({label:e,tone:t,body:n}){let r=Gt(n),i=Math.max(r.w,Ut(e,6.6))+20,a=r.h+At+kt;return{w:i,h:a,draw:(n,o)=>P`
    <g class=${`branch${t?` ${t}`:``}`} data-branch=${e}>
      <rect x=${n} y=${o} width=${i} height=${a} rx="6" />
      <text class="label" x=${n+kt} y=${o+15}>${e}</text>
      ${r.draw(n+(i-r.w)/2,o+At)}
    </g>`}}function Zt({task:e,body:t}){let n=Gt(t),r=Lt(e.type),i=Math.max(n.w,Ut(e.id)+20,Ut(r,6.4)+20)+20,a=n.h+jt+kt;return{w:i,h:a,draw:(t,o)=>P`
    <g class="cluster" data-task=${e.id}>
      <title>${e.id} (${e.type})</title>
      <rect x=${t} y=${o} width=${i} height=${a} rx="6" />
      <text class="id" x=${t+kt} y=${o+16}>${e.id}</text>
      <text class="type" x=${t+kt} y=${o+30}>${r}</text>
      ${n.draw(t+(i-n.w)/2,o+jt)}
    </g>`}}function Qt(e){let t=new Map(e.map(e=>[e.id,e])),n=new Map,r=new Set,i=e=>{if(n.has(e.id))return n.get(e.id);if(r.has(e.id))return 0;r.add(e.id);let a=e.deps.map(e=>t.get(e)).filter(Boolean),o=a.length?1+Math.max(...a.map(i)):0;return r.delete(e.id),n.set(e.id,o),o};return e.forEach(i),n}function $t(e){if(!e.length)return Yt(`no tasks`);let t=Qt(e),n=[];for(let r of e)(n[t.get(r.id)]||=[]).push({node:r,box:Gt(r.block)});let r=n.filter(Boolean).map(e=>({members:e,w:e.reduce((e,t)=>e+t.box.w,0)+Ot*(e.length-1),h:Math.max(...e.map(e=>e.box.h))})),i=e.flatMap(e=>e.deps.filter(e=>t.has(e)).map(n=>({from:n,to:e.id,long:t.get(e.id)-t.get(n)>1}))),a=i.filter(e=>e.long).length,o=Math.max(...r.map(e=>e.w));return{w:o+(a?Ot+Nt*(a-1):0),h:r.reduce((e,t)=>e+t.h,0)+52*(r.length-1),draw:(e,t)=>{let n=new Map,a=[],s=t;for(let t of r){let r=e+(o-t.w)/2;for(let{node:e,box:i}of t.members)n.set(e.id,{x:r,y:s,w:i.w,h:i.h}),a.push(i.draw(r,s)),r+=i.w+Ot;s+=t.h+52}let c=e+o+Ot/2;return[...i.map(({from:e,to:t,long:r})=>{let i=n.get(e),a=n.get(t),o=[i.x+i.w/2,i.y+i.h],s=[a.x+a.w/2,a.y],l=`${e}->${t}`;if(!r)return nn(...o,...s,l);let u=tn(o,s,c,l);return c+=Nt,u}),...a]}}}function en(e,t,n,r){return P`<line class="edge" x1=${e} y1=${t} x2=${n} y2=${r} marker-end="url(#topology-arrow)" />`}function tn([e,t],[n,r],i,a){let o=t+Dt/2,s=r-Dt/2;return P`<path class="edge" data-edge=${a} d=${`M${e},${t} L${e},${o} L${i},${o} L${i},${s} L${n},${s} L${n},${r}`}
    marker-end="url(#topology-arrow)" />`}function nn(e,t,n,r,i){let a=Math.max(Dt,(r-t)/2);return P`<path class="edge" data-edge=${i} d=${`M${e},${t} C${e},${t+a} ${n},${r-a} ${n},${r}`}
    marker-end="url(#topology-arrow)" />`}function rn({flow:e}){let t=Ht(e);if(!t)return P`<p class="muted" data-testid="topology">This flow has no tasks.</p>`;let{w:n,h:r,draw:i}=Gt(t),a=Math.ceil(n+8),o=Math.ceil(r+8);return P`
    <div class="topology-wrap">
      <svg class="topology" data-testid="topology" xmlns="http://www.w3.org/2000/svg"
        width=${a} height=${o} viewBox=${`0 0 ${a} ${o}`} role="img"
        aria-label=${`Tasks of ${e.namespace}.${e.id}`}>
        <defs>
          <marker id="topology-arrow" viewBox="0 0 10 10" refX="10" refY="5"
            markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" />
          </marker>
        </defs>
        ${i(4,4)}
      </svg>
    </div>`}var an=2e3,on=3;function sn(e,t){let n=cn(e),r=cn(t),i=0;for(;i<n.length&&i<r.length&&n[i]===r[i];)i++;let a=0;for(;a<n.length-i&&a<r.length-i&&n[n.length-1-a]===r[r.length-1-a];)a++;let o=n.slice(i,n.length-a),s=r.slice(i,r.length-a),c=ln(o,s,an),l=e=>e.map(e=>[` `,e]);return{lines:[...l(n.slice(0,i)),...c||[...o.map(e=>[`-`,e]),...s.map(e=>[`+`,e])],...l(n.slice(n.length-a))],replaced:!c}}function cn(e){if(!e)return[];let t=e.split(/\r?\n/);return t[t.length-1]===``&&t.pop(),t}function ln(e,t,n){let r=e.length,i=t.length;if(!r||!i)return[...e.map(e=>[`-`,e]),...t.map(e=>[`+`,e])];let a=r+i,o=a+1,s=new Int32Array(2*a+3),c=[];for(let l=0;l<=Math.min(a,n);l++){c.push(s.slice(o-l,o+l+1));for(let n=-l;n<=l;n+=2){let a=n===-l||n!==l&&s[o+n-1]<s[o+n+1]?s[o+n+1]:s[o+n-1]+1,u=a-n;for(;a<r&&u<i&&e[a]===t[u];)a++,u++;if(s[o+n]=a,a>=r&&u>=i)return un(c,e,t)}}return null}function un(e,t,n){let r=[],i=t.length,a=n.length;for(let o=e.length-1;o>0;o--){let s=e[o],c=i-a,l=c===-o||c!==o&&s[c-1+o]<s[c+1+o],u=l?c+1:c-1,d=s[u+o],f=d-u;for(;i>d&&a>f;)r.push([` `,t[--i]]),a--;l?r.push([`+`,n[--a]]):r.push([`-`,t[--i]])}for(;i>0&&a>0;)r.push([` `,t[--i]]),a--;return r.reverse()}function dn(e){let t=[],n=0;for(;n<e.length;){if(e[n][0]!==` `){t.push(e[n++]);continue}let r=n;for(;r<e.length&&e[r][0]===` `;)r++;let i=n===0?0:on,a=r===e.length?0:on;r-n>i+a+1?(t.push(...e.slice(n,n+i)),t.push([`@`,`${r-n-i-a} unchanged lines`]),t.push(...e.slice(r-a,r))):t.push(...e.slice(n,r)),n=r}return t}var fn={"+":`add`,"-":`del`," ":`same`,"@":`fold`};function pn({before:e,after:t}){let{lines:n,replaced:r}=sn(e,t),i=n.filter(([e])=>e===`+`).length,a=n.filter(([e])=>e===`-`).length;return P`
    <div>
      <p class="muted diff-summary">${i||a?`+${i} −${a} lines`:`No differences.`}${r?` (too many differences to align: shown as replaced)`:``}</p>
      <div class="diff" data-testid="diff">${dn(n).map(([e,t])=>P`<div class=${fn[e]}>${e===`@`?`@@ ${t} @@`:`${e===` `?`  `:`${e} `}${t}`}</div>`)}</div>
    </div>`}var mn={STRING:`text`,URI:`url`,EMAIL:`email`,SECRET:`password`,INT:`number`,FLOAT:`number`,DATE:`date`,TIME:`time`,DATETIME:`datetime-local`},hn={DURATION:`PT1M30S`,JSON:`{"key": "value"}`,YAML:`key: value`,ARRAY:`one item per line, or a JSON list`,URI:`https://example.com/x`},gn=e=>String(e.type||`STRING`).toUpperCase(),_n=e=>e.defaults!==void 0&&e.defaults!==null,vn=e=>e.required!==!1,yn=e=>`run-input-${e.id}`,bn=e=>Array.isArray(e.values)?e.values:Array.isArray(e.options)?e.options:[];function xn(e){let t=new Date(e);if(Number.isNaN(t.getTime()))return``;let n=e=>String(e).padStart(2,`0`);return`${t.getFullYear()}-${n(t.getMonth()+1)}-${n(t.getDate())}T${n(t.getHours())}:${n(t.getMinutes())}:${n(t.getSeconds())}`}function Sn(e){let t=e.defaults;if(!_n(e))return``;switch(gn(e)){case`DATETIME`:return xn(t);case`ARRAY`:return Array.isArray(t)?t.map(e=>typeof e==`string`?e:JSON.stringify(e)).join(`
`):String(t);case`JSON`:return typeof t==`string`?t:JSON.stringify(t,null,2);default:return typeof t==`string`?t:JSON.stringify(t)}}function Cn({input:e}){let t=gn(e),n={id:yn(e),name:e.id},r=Sn(e);switch(t){case`BOOLEAN`:case`BOOL`:return P`<label class="check"><input type="checkbox" ...${n}
        defaultChecked=${String(e.defaults)===`true`} /> true</label>`;case`SELECT`:case`ENUM`:return e.allowCustomValue?wn(e,n,r):P`
        <select ...${n}>
          ${!_n(e)&&P`<option value="">Choose…</option>`}
          ${bn(e).map(e=>P`<option value=${e} selected=${String(e)===r}>${e}</option>`)}
        </select>`;case`MULTISELECT`:{let t=new Set(Array.isArray(e.defaults)?e.defaults.map(String):[]);return P`<select multiple ...${n}>
        ${bn(e).map(e=>P`<option value=${e} selected=${t.has(String(e))}>${e}</option>`)}
      </select>`}case`FILE`:return P`<input type="file" ...${n} />`;case`JSON`:case`YAML`:case`ARRAY`:return P`<textarea class="mono" rows="4" ...${n} placeholder=${hn[t]} defaultValue=${r}></textarea>`;default:return P`<input type=${mn[t]||`text`} ...${n} defaultValue=${r}
        step=${t===`FLOAT`?`any`:t===`INT`||t===`DATETIME`||t===`TIME`?`1`:void 0}
        placeholder=${hn[t]} autocomplete=${t===`SECRET`?`off`:void 0} />`}}function wn(e,t,n){let r=`${yn(e)}-values`;return P`<input type="text" list=${r} ...${t} defaultValue=${n} />
    <datalist id=${r}>${bn(e).map(e=>P`<option value=${e} />`)}</datalist>`}function Tn(e,t){let n=t.elements.namedItem(e.id);if(n)switch(gn(e)){case`BOOLEAN`:case`BOOL`:return n.checked?`true`:`false`;case`MULTISELECT`:{let e=[...n.selectedOptions].map(e=>e.value);return e.length?JSON.stringify(e):void 0}case`FILE`:return n.files?.[0];case`DATETIME`:return n.value?new Date(n.value).toISOString():void 0;case`ARRAY`:{let e=n.value.trim();return e?e.startsWith(`[`)?e:JSON.stringify(e.split(/\r?\n/).map(e=>e.trim()).filter(Boolean)):void 0}default:return n.value===``?void 0:n.value}}function En(e,t){let n=new FormData;for(let r of e){let e=Tn(r,t);e instanceof File?n.append(r.id,e,e.name):e!==void 0&&n.append(r.id,e)}return n}function Dn(e){let t=Array.isArray(e?.body?.details)?e.body.details:[];return new Map(t.filter(e=>e&&e.input).map(e=>[e.input,e.message]))}function On({input:e,problem:t}){let n=vn(e)&&!_n(e);return P`
    <div class="form-row" data-input=${e.id}>
      <label for=${yn(e)}>
        ${e.id}${n&&P`<span class="req" title="required"> *</span>`}
        <span class="muted input-type"> ${gn(e)}</span>
      </label>
      <${Cn} input=${e} />
      ${e.description&&P`<span class="help">${e.description}</span>`}
      ${t&&P`<span class="field-error">${t}</span>`}
    </div>`}function kn({flow:e,onClose:t}){let[n,r]=L(null),[i,a]=L(!1),o=De(null),s=Array.isArray(e.inputs)?e.inputs:[];R(()=>{let e=e=>e.key===`Escape`&&t();return document.addEventListener(`keydown`,e),o.current?.querySelector(`input, select, textarea, button[type=submit]`)?.focus(),()=>document.removeEventListener(`keydown`,e)},[t]);let c=async t=>{t.preventDefault(),a(!0),r(null);try{let n=await q.trigger(e.namespace,e.id,En(s,t.currentTarget));B(H.execution(e.namespace,e.id,n.id))}catch(e){r(e),a(!1)}},l=Dn(n);return P`
    <div class="modal-back" onClick=${e=>e.target===e.currentTarget&&t()}>
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby="run-title" data-testid="run-modal">
        <h2 id="run-title">Execute ${e.namespace}.${e.id}</h2>
        <form ref=${o} onSubmit=${c} noValidate>
          ${s.length?s.map(e=>P`<${On} key=${e.id} input=${e} problem=${l.get(e.id)} />`):P`<p class="muted">This flow has no inputs.</p>`}
          <${J} error=${n} />
          <div class="toolbar modal-actions">
            <span class="grow"></span>
            <button type="button" onClick=${t}>Cancel</button>
            <button type="submit" class="primary" data-testid="run-submit" disabled=${i}>Execute</button>
          </div>
        </form>
      </div>
    </div>`}var An=new Intl.DateTimeFormat(void 0,{year:`numeric`,month:`2-digit`,day:`2-digit`,hour:`2-digit`,minute:`2-digit`,second:`2-digit`,hour12:!1}),jn=Intl.DateTimeFormat().resolvedOptions().timeZone;function Z(e){if(!e)return``;let t=new Date(e);if(Number.isNaN(t.getTime()))return String(e);let n=String(t.getMilliseconds()).padStart(3,`0`);return`${An.format(t)}.${n}`}function Mn(e){if(!e)return 0;let t=/^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(e);if(!t)return 0;let n=((+t[2]||0)*86400+(+t[3]||0)*3600+(+t[4]||0)*60+(+t[5]||0))*1e3;return t[1]?-n:n}function Q(e){if(!Number.isFinite(e))return``;if(e<1)return`< 1 ms`;if(e<1e3)return`${Math.round(e)} ms`;let t=e/1e3;if(t<60)return`${t.toFixed(t<10?2:1)} s`;let n=Math.floor(t/60);if(n<60)return`${n}m ${Math.round(t-n*60)}s`;let r=Math.floor(n/60);return`${r}h ${n-r*60}m`}function Nn(e,t=Date.now()){if(!e)return 0;let n=Date.parse(e.startDate||e.histories?.[0]?.date),r=e.endDate?Date.parse(e.endDate):t;return Number.isFinite(n)?Math.max(0,r-n):Mn(e.duration)}var Pn=`id: hello_world
namespace: company.team

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello, World!
`,Fn=[[`overview`,`Overview`],[`edit`,`Edit`],[`revisions`,`Revisions`],[`executions`,`Executions`]],In=null;function Ln({params:e}){return e.id?P`<${zn} key=${`${e.namespace}/${e.id}`}
    namespace=${e.namespace} id=${e.id} tab=${e.tab||`overview`} />`:P`<${Rn} />`}function Rn(){let[e,t]=L(Pn),[n,r]=L(null),[i,a]=L(!1),o=async()=>{a(!0),r(null);try{let t=await q.createFlow(e);In=`Created ${t.namespace}.${t.id}, revision ${t.revision}.`,B(H.flow(t.namespace,t.id,`edit`))}catch(e){r(e),a(!1)}};return P`
    <div class="flow-page">
      <div class="toolbar flow-head">
        <h1>New flow</h1>
        <span class="grow"></span>
        <${U} href=${H.flows()}>Cancel</${U}>
        <button class="primary" data-testid="save" onClick=${o} disabled=${i}>Save</button>
      </div>
      <${J} error=${n} />
      <${Ct} value=${Pn} onChange=${t} onSave=${o} />
    </div>`}function zn({namespace:e,id:t,tab:n}){let r=tt(()=>q.flow(e,t),[e,t]),[i,a]=L(null),[o,s]=L(null),[c,l]=L(!1),u=ke(()=>l(!1),[]);if(r.error)return P`<h1>${e}.${t}</h1><${J} error=${r.error} />`;if(!r.value)return P`<h1>${e}.${t}</h1><p class="muted">Loading…</p>`;let d=i||r.value;return P`
    <div class="flow-page">
      <div class="toolbar flow-head">
        <h1 data-testid="flow-title">${e}.${t}</h1>
        <span class="muted" data-testid="flow-revision">revision ${d.revision}</span>
        ${d.disabled&&P`<span class="label">disabled</span>`}
        <span class="grow"></span>
        <button class="primary" data-testid="execute" onClick=${()=>l(!0)}>Execute</button>
      </div>
      <${et} tabs=${Fn} current=${n} href=${n=>n===`executions`?H.executions({namespace:e,flowId:t}):H.flow(e,t,n===`overview`?void 0:n)} />
      ${n===`overview`&&P`<${Bn} flow=${d} />`}
      ${n===`edit`&&P`<${Kn} flow=${d} draft=${o} setDraft=${s} onSaved=${a} />`}
      ${n===`revisions`&&P`<${Jn} namespace=${e} id=${t} current=${d.revision} />`}
      ${!Fn.some(([e])=>e===n)&&P`<p>No tab “${n}” on a flow's page.</p>`}
      ${c&&P`<${kn} flow=${d} onClose=${u} />`}
    </div>`}function Bn({flow:e}){return P`
    ${e.description&&P`<p class="flow-description">${e.description}</p>`}
    <${at} labels=${Array.isArray(e.labels)?e.labels:Vn(e.labels)} />
    <div class="panel"><${rn} flow=${e} /></div>
    <div class="grid2">
      <div><h2>Inputs</h2><${Un} inputs=${e.inputs} /></div>
      <div><h2>Triggers</h2><${Gn} triggers=${e.triggers} /></div>
    </div>`}function Vn(e){return e&&typeof e==`object`?Object.entries(e).map(([e,t])=>({key:e,value:t})):[]}var Hn=e=>e==null?``:typeof e==`string`?e:JSON.stringify(e);function Un({inputs:e}){return e?.length?P`<table data-testid="inputs"><thead><tr><th>Id</th><th>Type</th><th>Required</th><th>Default</th><th>Description</th></tr></thead>
    <tbody>${e.map(e=>P`<tr key=${e.id}>
      <td class="mono">${e.id}</td><td>${e.type}</td>
      <td>${e.required===!1||e.defaults!==void 0?`no`:`yes`}</td>
      <td class="mono">${Hn(e.defaults)}</td><td>${e.description||``}</td></tr>`)}</tbody></table>`:P`<p class="muted">No inputs.</p>`}function Wn(e){let{id:t,type:n,disabled:r,description:i,conditions:a,...o}=e;return Object.entries(o).filter(([,e])=>typeof e!=`object`||!e)}function Gn({triggers:e}){return e?.length?P`<table data-testid="triggers"><thead><tr><th>Id</th><th>Type</th><th>Settings</th><th>Enabled</th></tr></thead>
    <tbody>${e.map(e=>P`<tr key=${e.id}>
      <td class="mono">${e.id}</td><td title=${e.type}>${Lt(e.type)}</td>
      <td class="mono">${Wn(e).map(([e,t])=>P`<div>${e}: ${String(t)}</div>`)}</td>
      <td>${e.disabled?`no`:`yes`}</td></tr>`)}</tbody></table>`:P`<p class="muted">No triggers.</p>`}function Kn({flow:e,draft:t,setDraft:n,onSaved:r}){let[i,a]=L(()=>{let e=In;return In=null,e}),[o,s]=L(null),[c,l]=L(!1),u=t??e.source??``,d=t!==null&&t!==e.source,f=async()=>{l(!0),s(null),a(null);try{let t=await q.updateFlow(e.namespace,e.id,u);r(t),a(`Saved revision ${t.revision}.`)}catch(e){s(e)}finally{l(!1)}};return P`
    <div class="toolbar">
      <button class="primary" data-testid="save" onClick=${f} disabled=${c}>Save</button>
      <span class="muted">${d?`Unsaved changes`:`Revision ${e.revision}`}</span>
    </div>
    ${i&&P`<div class="notice" role="status" data-testid="notice">${i}</div>`}
    <${J} error=${o} />
    <${Ct} value=${u} onChange=${n} onSave=${f} />`}async function qn(e,t){let n=await q.revisions(e,t);return(await Promise.all(n.map(n=>typeof n.source==`string`?n:W(`/flows/${V(e)}/${V(t)}`,{revision:n.revision,source:!0})))).sort((e,t)=>e.revision-t.revision)}function Jn({namespace:e,id:t,current:n}){let r=tt(()=>qn(e,t),[e,t,n]),[i,a]=L({});if(r.error)return P`<${J} error=${r.error} />`;if(!r.value)return P`<p class="muted">Loading revisions…</p>`;let o=r.value,s=new Map(o.map(e=>[e.revision,e])),c=o[o.length-1],l=s.get(i.to)||c,u=s.get(i.from)||o[Math.max(0,o.indexOf(l)-1)],d=e=>t=>a({from:u.revision,to:l.revision,[e]:Number(t.currentTarget.value)}),f=(e,t)=>P`<select data-testid=${`revision-${e}`} value=${t.revision} onChange=${d(e)}>
    ${o.map(e=>P`<option value=${e.revision}>revision ${e.revision}</option>`)}</select>`;return P`
    <div class="revisions">
      <table class="revision-list" data-testid="revisions">
        <thead><tr><th>Revision</th><th>Saved</th><th></th></tr></thead>
        <tbody>${[...o].reverse().map(e=>P`<tr key=${e.revision} class=${e===l||e===u?`chosen`:``}>
          <td>${e.revision}${e.revision===n?P` <span class="muted">(current)</span>`:``}</td>
          <td>${Z(e.updated)}</td>
          <td>${e===u?`from`:e===l?`to`:``}</td></tr>`)}</tbody>
      </table>
      <div class="revision-diff">
        ${o.length<2?P`<p class="muted">Only one revision: nothing to compare yet.</p>`:P`
          <div class="toolbar">Compare ${f(`from`,u)} with ${f(`to`,l)}</div>
          <${pn} before=${u.source} after=${l.source} />`}
      </div>
    </div>`}var Yn=[25,50,100];function Xn(e){return{namespace:e.get(`namespace`)||``,flowId:e.get(`flowId`)||``,state:e.getAll(`state`),labels:e.getAll(`labels`),startDate:e.get(`startDate`)||``,endDate:e.get(`endDate`)||``}}function Zn(){let{search:e}=ze(),t=Xn(e),n=Math.max(1,Number(e.get(`page`))||1),r=Yn.includes(Number(e.get(`size`)))?Number(e.get(`size`)):25,i=qe({...t,page:n,size:r}),a=qe(t),[{rows:o,total:s},c]=L({rows:[],total:0}),[l,u]=L(null),[d,f]=L(!1),[p,m]=L({connected:!1,events:0}),h=De(0),g=()=>{let e=++h.current;q.executions({...t,page:n,size:r,sort:`state.startDate:desc`}).then(t=>{e===h.current&&(c({rows:t.results.map(Qn),total:t.total}),u(null),f(!0))},t=>e===h.current&&u(t))};R(g,[i]),R(()=>{let e=null,t=Ke(`/api/peregrine/executions/follow?${a}`,{open:()=>m(e=>({...e,connected:!0})),changes:e=>{let t=JSON.parse(e);m(e=>({connected:!0,events:e.events+1})),c(e=>{let{rows:i,added:a}=$n(e.rows,t,n===1,r);return{rows:i,total:e.total+a}})},missed:()=>{e||=setTimeout(()=>{e=null,g()},1e3)},error:()=>m(e=>({...e,connected:!1}))});return()=>{t(),clearTimeout(e)}},[i]);let _=nt(1e3,o.some(e=>!Ze(e.state.current))),v=e=>{let i=new URLSearchParams(qe({...t,page:n,size:r,...e}));i.get(`page`)===`1`&&i.delete(`page`),i.get(`size`)===`25`&&i.delete(`size`),B(`${H.executions()}${i.size?`?${i}`:``}`)};return P`
    <div class="toolbar"><h1 class="grow">Executions</h1>
      <span class="muted" data-testid="live">${p.connected?`● live`:`○ connecting`}</span>
    </div>
    <${tr} filters=${t} onApply=${e=>v({...e,page:1})} />
    <${J} error=${l} />
    <table data-testid="executions">
      <thead><tr><th>Id</th><th>Start date</th><th>End date</th><th>Duration</th><th>Namespace</th><th>Flow</th><th>Labels</th><th>State</th></tr></thead>
      <tbody>${o.map(e=>P`<${er} key=${e.id} e=${e} now=${_} />`)}</tbody>
    </table>
    ${d&&!o.length?P`<p class="muted">No execution found.</p>`:null}
    <div class="pager">
      <span class="muted" data-testid="total">${s} execution${s===1?``:`s`}</span>
      <select aria-label="Page size" value=${r} onChange=${e=>v({size:e.currentTarget.value,page:1})}>
        ${Yn.map(e=>P`<option value=${e}>${e} per page</option>`)}
      </select>
    </div>
    <${ut} page=${n} size=${r} total=${s} onPage=${e=>v({page:e})} />`}function Qn(e){return{id:e.id,namespace:e.namespace,flowId:e.flowId,labels:e.labels||[],state:e.state}}function $n(e,t,n,r){let i=new Map(e.map((e,t)=>[e.id,t])),a=e.slice(),o=[];for(let e of t){let t=i.get(e.id);t===void 0?n&&o.push(Qn(e)):a[t]=Qn(e)}return o.length?(o.sort((e,t)=>Date.parse(t.state.startDate)-Date.parse(e.state.startDate)),{rows:o.concat(a).slice(0,r),added:o.length}):{rows:a,added:0}}var er=({e,now:t})=>P`
  <tr data-execution=${e.id} data-flow-id=${e.flowId} data-state=${e.state.current}>
    <td class="mono"><${U} href=${H.execution(e.namespace,e.flowId,e.id)}>${e.id.slice(0,8)}</${U}></td>
    <td>${Z(e.state.startDate)}</td>
    <td>${Z(e.state.endDate)}</td>
    <td>${Q(Nn(e.state,t))}</td>
    <td>${e.namespace}</td>
    <td><${U} href=${H.flow(e.namespace,e.flowId)}>${e.flowId}</${U}></td>
    <td><${at} labels=${e.labels} /></td>
    <td><${$e} state=${e.state.current} /></td>
  </tr>`;function tr({filters:e,onApply:t}){let[n,r]=L(e);R(()=>r(e),[qe(e)]);let i=e=>t=>r({...n,[e]:t.currentTarget.value}),a=e=>e?nr(e):``,o=Oe(()=>new Set(n.state),[n.state]);return P`
    <form class="toolbar panel" onSubmit=${e=>{e.preventDefault(),t(n)}}>
      <input placeholder="Namespace" aria-label="Namespace" name="namespace" value=${n.namespace} onInput=${i(`namespace`)} />
      <input placeholder="Flow id" aria-label="Flow" name="flowId" value=${n.flowId} onInput=${i(`flowId`)} />
      <select multiple size="3" aria-label="State" name="state" onChange=${e=>r({...n,state:[...e.currentTarget.selectedOptions].map(e=>e.value)})}>
        ${Ye.map(e=>P`<option value=${e} selected=${o.has(e)}>${e}</option>`)}
      </select>
      <input placeholder="label key:value" aria-label="Labels" name="labels" value=${n.labels.join(` `)}
        onInput=${e=>r({...n,labels:e.currentTarget.value.split(/\s+/).filter(Boolean)})} />
      <label>from <input type="datetime-local" aria-label="Started after" value=${a(n.startDate)}
        onInput=${e=>r({...n,startDate:rr(e.currentTarget.value)})} /></label>
      <label>to <input type="datetime-local" aria-label="Started before" value=${a(n.endDate)}
        onInput=${e=>r({...n,endDate:rr(e.currentTarget.value)})} /></label>
      <button type="submit" class="primary">Filter</button>
      <button type="button" onClick=${()=>t({namespace:``,flowId:``,state:[],labels:[],startDate:``,endDate:``})}>Clear</button>
    </form>`}function nr(e){let t=new Date(e);if(Number.isNaN(t.getTime()))return``;let n=e=>String(e).padStart(2,`0`);return`${t.getFullYear()}-${n(t.getMonth()+1)}-${n(t.getDate())}T${n(t.getHours())}:${n(t.getMinutes())}`}function rr(e){if(!e)return``;let t=new Date(e);return Number.isNaN(t.getTime())?``:t.toISOString()}function ir(e){let t=new Map(e.map(e=>[e.id,{run:e,children:[]}])),n=[];for(let r of e){let e=t.get(r.id),i=r.parentTaskRunId&&t.get(r.parentTaskRunId);(i?i.children:n).push(e)}return n}function ar(e,t,n,r){for(let i of e){r.push({kind:`run`,node:i,depth:t});let e=new Map;for(let t of i.children){let n=t.run.value,r=n!=null&&n!==i.run.value?n:``;e.set(r,[...e.get(r)||[],t])}let a=[...e.keys()].filter(e=>e!==``);if(a.length===0)ar(i.children,t+1,n,r);else{ar(e.get(``)||[],t+1,n,r);for(let o of a){let s=`${i.run.id}:${o}`,c=e.get(o),l=a.length<=or!==n.has(s);r.push({kind:`group`,id:s,value:o,members:c,depth:t+1,open:l}),l&&ar(c,t+2,n,r)}}}return r}var or=5;function sr(e,t){let n=Date.parse(e.startDate||e.histories?.[0]?.date);return{start:n,end:n+Nn(e,t)}}function cr({execution:e,now:t,selected:n,onSelect:r}){let[i,a]=L(new Set),o=e.taskRunList||[];if(!o.length)return P`<p class="muted">No task has run yet.</p>`;let s=sr(e.state,t),c=Math.max(1,s.end-s.start),l=e=>Math.min(100,Math.max(0,(e-s.start)/c*100)),u=e=>{let n=sr(e,t);return`left:${l(n.start)}%;width:${Math.max(.3,l(n.end)-l(n.start))}%;background:${Qe(e.current)}`},d=e=>{let t=new Set(i);t.has(e)?t.delete(e):t.add(e),a(t)};return P`<div class="gantt" data-testid="gantt">
    <div class="row muted"><div class="name">Task</div><div>${Q(c)}</div><div class="dur">Duration</div></div>
    ${ar(ir(o),0,i,[]).map(e=>{if(e.kind===`group`){let n=Math.min(...e.members.map(e=>sr(e.run.state,t).start)),r=Math.max(...e.members.map(e=>sr(e.run.state,t).end));return P`<div class="row group" data-group=${e.value}>
          <div class="name" style=${`padding-left:${8+e.depth*14}px`} onClick=${()=>d(e.id)}>
            ${e.open?`▾`:`▸`} value: ${e.value} <span class="muted">(${e.members.length})</span></div>
          <div class="track"><div class="bar" style=${`left:${l(n)}%;width:${Math.max(.3,l(r)-l(n))}%;background:#c9c3dc`}></div></div>
          <div class="dur">${Q(r-n)}</div>
        </div>`}let i=e.node.run;return P`<div class=${`row${n===i.id?` selected`:``}`} data-task-run=${i.id} data-task=${i.taskId} data-state=${i.state.current}>
        <div class="name" style=${`padding-left:${8+e.depth*14}px`} onClick=${()=>r(i.id)}
          title=${i.value?`${i.taskId} (${i.value})`:i.taskId}>
          ${i.taskId}${i.value&&e.depth===0?P` <span class="muted">${i.value}</span>`:null}</div>
        <div class="track" onClick=${()=>r(i.id)}><div class="bar" style=${u(i.state)} title=${i.state.current}></div></div>
        <div class="dur">${Q(Nn(i.state,t))}</div>
      </div>`})}
  </div>`}var lr=[[`overview`,`Overview`],[`gantt`,`Gantt`],[`logs`,`Logs`],[`outputs`,`Outputs`]];function ur(e){let[t,n]=L({execution:null,error:null,live:!1}),[r,i]=L(0);return R(()=>{let t=!1;r===0&&n({execution:null,error:null,live:!1}),q.execution(e).then(e=>!t&&r===0&&n(t=>({...t,execution:t.execution??e})),e=>!t&&n(t=>({...t,error:e})));let i=Ke(`${Ve}/executions/${encodeURIComponent(e)}/follow`,{message:(e,t)=>{n(t=>({...t,execution:JSON.parse(e),live:!0})),t.lastEventId===`end`&&i()},error:()=>n(e=>({...e,live:!1}))});return()=>{t=!0,i()}},[e,r]),{...t,refollow:()=>i(e=>e+1)}}function dr({params:e}){let{namespace:t,flowId:n,id:r,tab:i=`overview`}=e,{execution:a,error:o,refollow:s}=ur(r),[c,l]=L(null),[u,d]=L(null),[f,p]=L(null),m=nt(250,!(!a||Ze(a.state.current)));if(o)return P`<${J} error=${o} />`;if(!a)return P`<p class="muted">Loading ${r}…</p>`;let h=a.state.current,g=(e,t)=>async()=>{d(null),p(null);try{let n=await t();return p(`${e}: done`),s(),n}catch(e){return d(e),null}},_=async()=>{let e=await g(`Replay`,()=>q.replay(r))();e?.id&&p(P`Replayed as <${U} href=${H.execution(t,n,e.id)}>${e.id}</${U}>`)},v=[`FAILED`,`KILLED`,`WARNING`].includes(h);return P`
    <div class="toolbar">
      <h1 class="grow">
        <${U} href=${H.flow(t,n)}>${t}.${n}</${U}>
        <span class="mono"> ${r}</span>
      </h1>
      <span data-testid="execution-state"><${$e} state=${h} /></span>
      ${Je[h]?.killable?P`<button class="danger" data-testid="kill" onClick=${g(`Kill`,()=>q.kill(r))}>Kill</button>`:null}
      ${h===`PAUSED`?P`<button data-testid="resume" onClick=${g(`Resume`,()=>q.resume(r))}>Resume</button>`:null}
      ${v?P`<button data-testid="restart" onClick=${g(`Restart`,()=>q.restart(r))}>Restart</button>`:null}
      ${Ze(h)?P`<button data-testid="replay" onClick=${_}>Replay</button>`:null}
    </div>
    <${J} error=${u} />
    ${f?P`<div class="notice">${f}</div>`:null}
    <${et} tabs=${lr} current=${i} href=${e=>H.execution(t,n,r,e===`overview`?``:e)} />
    ${i===`overview`?P`<${fr} execution=${a} now=${m} />`:null}
    ${i===`gantt`?P`
      <div class="panel"><${cr} execution=${a} now=${m} selected=${c} onSelect=${l} /></div>
      <${mr} execution=${a} id=${c} now=${m} />`:null}
    ${i===`logs`?P`<${gr} id=${r} />`:null}
    ${i===`outputs`?P`<${hr} execution=${a} />`:null}`}function fr({execution:e,now:t}){let n=e.state;return P`
    <div class="grid2">
      <div class="panel">
        <table class="kv"><tbody>
          <tr><th>Namespace</th><td>${e.namespace}</td></tr>
          <tr><th>Flow</th><td>${e.flowId} (revision ${e.flowRevision})</td></tr>
          <tr><th>Created</th><td>${Z(n.startDate)}</td></tr>
          <tr><th>Ended</th><td>${Z(n.endDate)}</td></tr>
          <tr><th>Duration</th><td data-testid="duration">${Q(Nn(n,t))}</td></tr>
          <tr><th>Labels</th><td><${at} labels=${e.labels} /></td></tr>
          ${e.parentId?P`<tr><th>Parent</th><td class="mono">${e.parentId}</td></tr>`:null}
          ${e.originalId&&e.originalId!==e.id?P`<tr><th>Original</th><td class="mono">${e.originalId}</td></tr>`:null}
        </tbody></table>
      </div>
      <div class="panel">
        <h2>State history</h2>
        <table data-testid="state-history"><tbody>${n.histories.map((e,t)=>P`
          <tr><td><${$e} state=${e.state} /></td><td>${Z(e.date)}</td>
            <td class="muted">${t>0?pr(n.histories[t-1].date,e.date):``}</td></tr>`)}
        </tbody></table>
      </div>
    </div>
    <div class="panel"><h2>Inputs</h2><${it} map=${e.inputs} /></div>
    ${e.trigger?P`<div class="panel"><h2>Trigger</h2><${rt} value=${e.trigger} /></div>`:null}`}function pr(e,t){let n=Q(Date.parse(t)-Date.parse(e));return n.startsWith(`<`)?n:`+${n}`}function mr({execution:e,id:t,now:n}){let r=(e.taskRunList||[]).find(e=>e.id===t);return r?P`<div class="panel" data-testid="task-run">
    <h2>${r.taskId}${r.value?` (${r.value})`:``} <${$e} state=${r.state.current} /></h2>
    <h2>Attempts</h2>
    <table><thead><tr><th>#</th><th>State</th><th>Started</th><th>Duration</th></tr></thead><tbody>
      ${(r.attempts||[]).map((e,t)=>P`<tr><td>${t+1}</td><td><${$e} state=${e.state.current} /></td>
        <td>${Z(e.state.startDate||e.state.histories?.[0]?.date)}</td><td>${Q(Nn(e.state,n))}</td></tr>`)}
    </tbody></table>
    <h2>Outputs</h2>
    <div data-testid="task-outputs"><${it} map=${r.outputs} /></div>
  </div>`:P`<p class="muted">Select a task run to see its outputs and attempts.</p>`}function hr({execution:e}){let t=(e.taskRunList||[]).filter(e=>e.outputs&&Object.keys(e.outputs).length);return P`
    <div class="panel"><h2>Flow outputs</h2><${it} map=${e.outputs} /></div>
    ${t.map(e=>P`<div class="panel" data-outputs-of=${e.taskId}>
      <h2>${e.taskId}${e.value?` (${e.value})`:``}</h2><${it} map=${e.outputs} /></div>`)}
    ${t.length?null:P`<p class="muted">No task output.</p>`}`}function gr({id:e}){let[t,n]=L([]),[r,i]=L(``);return R(()=>{n([]);let t=[],i=null,a=Ke(`${Ve}/logs/${encodeURIComponent(e)}/follow${r?`?minLevel=${r}`:``}`,{message:e=>{t.push(JSON.parse(e)),i??=requestAnimationFrame(()=>{let e=t;t=[],i=null,n(t=>t.concat(e).slice(-1e4))})},error:()=>a()});return()=>{a(),i&&cancelAnimationFrame(i)}},[e,r]),P`<div class="panel">
    <div class="toolbar"><select aria-label="Minimum level" value=${r} onChange=${e=>i(e.currentTarget.value)}>
      <option value="">All levels</option>${[`TRACE`,`DEBUG`,`INFO`,`WARN`,`ERROR`].map(e=>P`<option>${e}</option>`)}
    </select><span class="muted">${t.length} line${t.length===1?``:`s`}</span>
    <a href=${`${Ve}/logs/${encodeURIComponent(e)}/download`}>Download</a></div>
    <pre class="logs" data-testid="logs">${t.map(e=>`${Z(e.timestamp)} ${e.level.padEnd(5)} ${e.taskId||``} ${e.message}\n`)}</pre>
  </div>`}function _r(){let[e,t]=L(``),[n,r]=L(null),i=tt(()=>q.triggers({size:1e3}),[]),a=async e=>{r(null);try{await q.setTriggerDisabled({namespace:e.namespace,flowId:e.flowId,triggerId:e.triggerId},!e.disabled),i.reload()}catch(e){r(e)}},o=(i.value?.results||[]).filter(({triggerContext:t})=>!e||`${t.namespace}.${t.flowId}.${t.triggerId}`.toLowerCase().includes(e.toLowerCase()));return P`
    <div class="toolbar"><h1 class="grow">Triggers</h1>
      <input type="search" placeholder="Search" aria-label="Search triggers" value=${e} onInput=${e=>t(e.currentTarget.value)} />
    </div>
    <${J} error=${i.error||n} />
    <table data-testid="triggers"><thead><tr><th>Id</th><th>Flow</th><th>Type</th><th>Last fired</th><th>Next fire date</th><th>Enabled</th></tr></thead>
    <tbody>${o.map(({abstractTrigger:e,triggerContext:t})=>P`
      <tr data-trigger=${`${t.namespace}.${t.flowId}.${t.triggerId}`}>
        <td>${t.triggerId}</td>
        <td><${U} href=${H.flow(t.namespace,t.flowId)}>${t.namespace}.${t.flowId}</${U}></td>
        <td>${(e?.type||``).split(`.`).pop()}${e?.cron?P` <span class="mono muted">${e.cron}</span>`:null}</td>
        <td>${Z(t.date)}</td>
        <td>${t.disabled?P`<span class="muted">disabled</span>`:Z(t.nextExecutionDate)}</td>
        <td><label><input type="checkbox" checked=${!t.disabled} onChange=${()=>a(t)} aria-label="Enabled" /> ${t.disabled?`off`:`on`}</label></td>
      </tr>`)}
    </tbody></table>
    ${i.value&&!o.length?P`<p class="muted">No trigger.</p>`:null}`}function vr({series:e,samples:t,unit:n=``,label:r}){let i={l:36,r:4,t:6,b:6},a=e.flatMap(e=>t.map(t=>t[e.key]).filter(Number.isFinite)),o=Math.max(1,...a)*1.1,s=Math.max(2,t.length),c=e=>i.l+e/(s-1)*(300-i.l-i.r),l=e=>110-i.b-e/o*(110-i.t-i.b),u=e=>{let n=``;return t.forEach((t,r)=>{Number.isFinite(t[e])&&(n+=`${n?`L`:`M`}${c(r).toFixed(1)},${l(t[e]).toFixed(1)}`)}),n};return P`<svg class="chart" viewBox=${`0 0 300 110`} role="img" aria-label=${r}>
    ${[0,o/2,o].map(e=>P`<line x1=${i.l} x2=${300-i.r} y1=${l(e)} y2=${l(e)} stroke="#eee" />
      <text x=${i.l-4} y=${l(e)+3} text-anchor="end">${$(e)}${n}</text>`)}
    ${e.map(e=>P`<path d=${u(e.key)} fill="none" stroke=${e.color} stroke-width="1.5" />`)}
  </svg>`}function $(e){return Number.isFinite(e)?Math.abs(e)>=1e4?`${(e/1e3).toFixed(1)}k`:Number.isInteger(e)?String(e):Math.abs(e)>=10?e.toFixed(0):Math.abs(e)>=1?e.toFixed(1):e.toFixed(2):`–`}function yr(e){let t={};for(let n of e.split(`
`)){if(!n||n.startsWith(`#`))continue;let e=/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(n);if(!e)continue;let r={};for(let t of(e[2]||``).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))r[t[1]]=t[2];(t[e[1]]||=[]).push({labels:r,value:Number(e[3])})}return t}var br=(e,t)=>(e[t]||[]).reduce((e,t)=>e+t.value,0),xr=(e,t)=>Math.max(0,...(e[t]||[]).map(e=>e.value));function Sr(e,t){return(e[`${t}_bucket`]||[]).map(e=>[e.labels.le===`+Inf`?1/0:Number(e.labels.le),e.value]).sort((e,t)=>e[0]-t[0])}function Cr(e,t,n,r){let i=new Map(Sr(t||{},r)),a=Sr(n,r).map(([e,t])=>[e,t-(i.get(e)||0)]),o=a.length?a[a.length-1][1]:0;if(o<=0)return NaN;let s=e*o,c=0,l=0;for(let[e,t]of a){if(t>=s){if(e===1/0)return c;let n=t-l;return n>0?c+(e-c)*((s-l)/n):e}c=e,l=t}return c}var wr=1e3,Tr=10,Er=`peregrine_execution_duration_seconds`,Dr=`peregrine_wal_fsync_seconds`;function Or(e,t,n,r){let i=e=>(br(n,e)-br(t,e))/r,a=(t,r)=>Cr(t,e,n,r)*1e3;return{at:Date.now(),finished:i(`peregrine_executions_finished_total`),created:i(`peregrine_executions_created_total`),rejected:i(`peregrine_executions_rejected_total`),p50:a(.5,Er),p95:a(.95,Er),p99:a(.99,Er),running:br(n,`peregrine_executions_running`),kept:br(n,`peregrine_executions_kept`),inbox:br(n,`peregrine_shard_inbox_depth`),inboxMax:xr(n,`peregrine_shard_inbox_depth`),fsyncs:i(`${Dr}_count`),fsync50:a(.5,Dr),fsync99:a(.99,Dr),followers:br(n,`peregrine_sse_followers`)}}function kr(){let[e,t]=L([]),[n,r]=L(null);R(()=>{let e=[],n=0,i=!1,a=async()=>{try{let a=await fetch(`/metrics`);if(!a.ok)throw Error(`/metrics answered ${a.status}`);let o=performance.now(),s=yr(await a.text());if(i)return;if(e.length){let r=Or(e[0],e[e.length-1],s,(o-n)/1e3);t(e=>e.concat([r]).slice(-180))}e.push(s),e.length>Tr&&e.shift(),n=o,r(null)}catch(e){i||r(e)}};a();let o=setInterval(a,wr);return()=>{i=!0,clearInterval(o)}},[]);let i=e[e.length-1]||{},a=(e,t,n,r,i)=>P`
    <div class="panel card" data-testid=${i}><h3>${e}</h3>
      <div class="big">${$(t)}<span class="muted"> ${n}</span></div>${r}</div>`;return P`
    <div class="toolbar"><h1 class="grow">Engine</h1><span class="muted">from /metrics, every ${wr/1e3} s</span></div>
    <${J} error=${n} />
    <div class="cards" data-samples=${e.length}>
      ${a(`Executions per second (ended)`,i.finished,`/s`,P`<${vr} label="executions per second" samples=${e}
        series=${[{key:`finished`,color:`#029E73`},{key:`created`,color:`#1761FD`}]} unit="" />`,`rate`)}
      ${a(`Latency p99 (start to end, last 10 s)`,i.p99,`ms`,P`<${vr} label="latency percentiles" samples=${e}
        series=${[{key:`p50`,color:`#029E73`},{key:`p95`,color:`#DD5F00`},{key:`p99`,color:`#AB0009`}]} unit="" />
        <div class="muted">p50 ${$(i.p50)} · p95 ${$(i.p95)} · p99 ${$(i.p99)} ms</div>`,`latency`)}
      ${a(`Running executions`,i.running,``,P`<${vr} label="running executions" samples=${e}
        series=${[{key:`running`,color:`#8405FF`}]} />`,`running`)}
      ${a(`Inbox depth (all shards)`,i.inbox,`max ${$(i.inboxMax)}`,P`<${vr} label="inbox depth" samples=${e}
        series=${[{key:`inbox`,color:`#1761FD`}]} />`,`inbox`)}
      ${a(`WAL fsync p99 (last 10 s)`,i.fsync99,`ms`,P`<${vr} label="WAL fsync latency" samples=${e}
        series=${[{key:`fsync50`,color:`#029E73`},{key:`fsync99`,color:`#AB0009`}]} />
        <div class="muted">p50 ${$(i.fsync50)} ms · ${$(i.fsyncs)} syncs/s</div>`,`fsync`)}
      ${a(`Kept finished executions`,i.kept,``,P`<div class="muted">followers ${$(i.followers)} · rejected ${$(i.rejected)}/s</div>`,`kept`)}
    </div>`}var Ar=[[`/flows`,st],[`/flows/new`,Ln],[`/flows/edit/:namespace/:id/:tab?`,Ln],[`/executions`,Zn],[`/executions/:namespace/:flowId/:id/:tab?`,dr],[`/admin/triggers`,_r],[`/engine`,kr]],jr=[[`Flows`,H.flows(),`/flows`],[`Executions`,H.executions(),`/executions`],[`Triggers`,H.triggers(),`/admin/triggers`],[`Engine`,H.engine(),`/engine`]];function Mr(){let{path:e}=ze();if(!e.startsWith(`/ui/main`))return queueMicrotask(()=>B(H.executions(),{replace:!0})),null;let t=e.slice(8)||`/`,n=null;for(let[e,r]of Ar){let i=Be(e,t);if(i){n=P`<${r} key=${e} params=${i} />`;break}}return P`
    <div class="shell">
      <aside class="menu">
        <div class="brand">Peregrine</div>
        ${jr.map(([e,n,r])=>P`
          <${U} href=${n} class=${t.startsWith(r)?`active`:``}>${e}</${U}>`)}
        <div class="zone" title="Dates are shown in this time zone">${jn}</div>
      </aside>
      <main class="content">
        ${n||P`<h1>Not found</h1><p>No page at ${e}.</p>`}
      </main>
    </div>`}M(P`<${Mr} />`,document.getElementById(`app`));