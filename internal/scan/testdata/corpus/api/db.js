const mongoose = require('mongoose');
mongoose.connect('mongodb+srv://api:apT4YG7i1m!oqSh5m@cluster0.x1y2z.mongodb.net/app');
