// A stand-in for spark-submit in integration tests, run through sudo as the end user. It prints what the
// tests check as JSON lines on stdout. Arguments after the application name choose what it does.
console.log(JSON.stringify({ event: 'placeholder' }));
